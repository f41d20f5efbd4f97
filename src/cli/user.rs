//! `sealpost user …`: practice users, their set-password links and app passwords.

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use sealpost::app;
use sealpost::config::Config;
use store::SystemClock;
use store::accounts::Role;

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
            let password = store.auth().create_app_password(&user, &label, "cli").await?;
            println!(
                "App password \"{}\" for {} (shown only this once):",
                label.trim(),
                user.email
            );
            println!("{password}");
            Ok(())
        }
    }
}
