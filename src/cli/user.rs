//! `sealpost user …`: practice users, their set-password links and app passwords,
//! User Managers, and deactivating someone who left.

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;
use store::accounts::staff_admin::FreshLink;
use store::accounts::{Role, UserStatus};

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PracticeRole {
    Doctor,
    Staff,
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add a doctor or staff member to a practice; prints their set-password link.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: PracticeRole,
        /// The practice's domain.
        #[arg(long)]
        practice: String,
        /// A paid account: may send secure mail.
        #[arg(long)]
        paid: bool,
        /// May manage the practice's users (the first user always may).
        #[arg(long)]
        user_manager: bool,
    },
    /// List a practice's users with their role and registration status.
    List {
        /// The practice's domain.
        #[arg(long)]
        practice: String,
    },
    /// Print a fresh set-password link (or, for someone written to who never
    /// registered, a fresh invitation link); every earlier one stops working.
    Link {
        #[arg(long)]
        email: String,
    },
    /// Deactivate someone who left the practice: they can no longer sign in,
    /// their sessions, links and app passwords end; their sent messages stay.
    Deactivate {
        #[arg(long)]
        email: String,
    },
    /// Undo a deactivation: prints a set-password link (their old password,
    /// sessions and app passwords stay void).
    Reactivate {
        #[arg(long)]
        email: String,
    },
    /// Make a user a User Manager of their practice (`--off`: no longer one).
    Manager {
        #[arg(long)]
        email: String,
        /// Remove the User Manager right instead (the last one stays).
        #[arg(long)]
        off: bool,
    },
    /// Make an app password for a user's mail client; prints it (shown only once).
    AppPassword {
        #[arg(long)]
        email: String,
        /// What it is for, e.g. "Outlook on the front desk PC".
        #[arg(long)]
        label: String,
    },
}

/// `sealpost user ...`
pub(crate) async fn user(command: UserCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            email,
            name,
            role,
            practice,
            paid,
            user_manager,
        } => {
            let store = app::open_store(config, Arc::new(SystemClock)).await?;
            let role = match role {
                PracticeRole::Doctor => Role::Doctor,
                PracticeRole::Staff => Role::Staff,
            };
            let (user, token) = store
                .accounts()
                .add_practice_user(&email, &name, role, &practice, paid, user_manager)
                .await?;
            println!(
                "Added {} <{}> to {practice}{}.",
                user.full_name,
                user.email,
                if user.user_manager { " as User Manager" } else { "" }
            );
            println!("Set-password link (valid 7 days, works once):");
            println!("{}/password/{token}", config.public_url.trim_end_matches('/'));
            Ok(())
        }
        UserCommand::AppPassword { email, label } => {
            let store = app::open_store(config, Arc::new(SystemClock)).await?;
            let user = store
                .accounts()
                .user_by_email(&email)
                .await?
                .with_context(|| format!("no user {email}"))?;
            if user.status == UserStatus::Deactivated {
                anyhow::bail!("{} is deactivated", user.email);
            }
            let password = store.auth().create_app_password(&user, &label, "cli").await?;
            println!(
                "App password \"{}\" for {} (shown only this once):",
                label.trim(),
                user.email
            );
            println!("{password}");
            Ok(())
        }
        command => staff(command, config).await,
    }
}

/// `sealpost user list|link|deactivate|reactivate|manager`.
async fn staff(command: UserCommand, config: &Config) -> anyhow::Result<()> {
    let store = app::open_store(config, Arc::new(SystemClock)).await?;
    let accounts = store.accounts();
    match command {
        UserCommand::List { practice } => {
            let members = accounts.practice_members(&practice).await?;
            if members.is_empty() {
                println!("No users in {practice} yet (add one with `sealpost user add`).");
            }
            for member in members {
                let user = &member.user;
                println!(
                    "{:<40} {:<24} {:<6} {}{}",
                    user.email,
                    user.display_name(),
                    user.role.as_str(),
                    member.registration.label(),
                    if user.user_manager { ", User Manager" } else { "" }
                );
            }
        }
        UserCommand::Link { email } => {
            let link = accounts.fresh_link(&email, "admin", "cli").await?;
            let what = match link {
                FreshLink::Invitation(_) => "Invitation link (to their latest secure message",
                FreshLink::SetPassword(_) => "Set-password link (works once",
            };
            println!("{what}; earlier links no longer work):");
            println!("{}{}", config.public_url.trim_end_matches('/'), link.path());
        }
        UserCommand::Deactivate { email } => {
            let user = accounts.deactivate_by_email(&email, "admin", "cli").await?;
            println!(
                "Deactivated {}: signed out everywhere, links and app passwords revoked; their sent messages stay.",
                user.email
            );
        }
        UserCommand::Reactivate { email } => {
            let link = accounts.reactivate(&email, "admin", "cli").await?;
            println!("Reactivated {}. Set-password link (works once):", email.trim());
            println!("{}{}", config.public_url.trim_end_matches('/'), link.path());
        }
        UserCommand::Manager { email, off } => {
            let user = accounts.set_user_manager(&email, !off, "admin", "cli").await?;
            println!(
                "{} is {} User Manager of their practice.",
                user.email,
                if user.user_manager { "now a" } else { "no longer a" }
            );
        }
        UserCommand::Add { .. } | UserCommand::AppPassword { .. } => anyhow::bail!("handled above"),
    }
    Ok(())
}
