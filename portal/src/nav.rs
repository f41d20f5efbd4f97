//! The page header's view of who is signed in: a leaf shared by the session
//! (which builds it), the pages and the error pages (which render it).

use store::accounts::{Role, User};

/// The page header for a signed-in viewer: their name, the sign-out form's
/// CSRF token, what the menus show them and their unread count.
#[derive(Debug, Clone)]
pub struct Nav {
    pub name: String,
    pub csrf: String,
    /// A practice user, who sends secure mail (shows the Sent list).
    pub sender: bool,
    /// A practice's User Manager (shows Manage users).
    pub manager: bool,
    /// Unread messages in the inbox.
    pub unread: i64,
}

impl Nav {
    /// The header for `user`, whose session's CSRF token is `csrf`.
    pub fn of(user: &User, csrf: String, unread: i64) -> Self {
        let sender = user.practice_id.is_some() && matches!(user.role, Role::Doctor | Role::Staff);
        Self {
            name: user.display_name().to_owned(),
            csrf,
            sender,
            manager: user.user_manager && user.practice_id.is_some(),
            unread,
        }
    }
}
