//! Who may send secure mail: the one rule the relay (marked mail and ordinary
//! mail from a signed-in account), reply threading and the portal ask, and
//! that compose, Secure Drop and billing will ask.

use serde::Serialize;

use super::{Role, User, UserStatus};

/// Why a person may not send secure mail on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SenderRefusal {
    /// No account with this address.
    Unknown,
    /// An account, but not a doctor or staff member of a practice.
    NotPracticeUser,
    /// A practice user without a paid account.
    NotPaid,
}

impl User {
    /// May this person send secure mail on their own, that is start a
    /// conversation, rather than only reply within one they were brought into?
    /// A paid doctor or staff member of a practice may; the refusal says which
    /// part is missing (membership is checked before payment). Someone
    /// deactivated (they left) is no practice user any more.
    pub fn may_send_secure(&self) -> Result<(), SenderRefusal> {
        if self.practice_id.is_none()
            || !matches!(self.role, Role::Doctor | Role::Staff)
            || self.status == UserStatus::Deactivated
        {
            return Err(SenderRefusal::NotPracticeUser);
        }
        if !self.paid {
            return Err(SenderRefusal::NotPaid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Profile;
    use crate::ids::{PracticeId, UserId};

    fn person(role: Role, practice: Option<i64>, paid: bool) -> User {
        User {
            id: UserId(1),
            email: "someone@example.com".into(),
            full_name: String::new(),
            phone: String::new(),
            role,
            practice_id: practice.map(PracticeId),
            paid,
            user_manager: false,
            status: UserStatus::Active,
            profile: Profile::default(),
        }
    }

    #[test]
    fn only_a_paid_doctor_or_staff_member_of_a_practice_may_send_secure() {
        assert_eq!(person(Role::Doctor, Some(1), true).may_send_secure(), Ok(()));
        assert_eq!(person(Role::Staff, Some(1), true).may_send_secure(), Ok(()));
        // Each condition alone refuses.
        assert_eq!(
            person(Role::Doctor, Some(1), false).may_send_secure(),
            Err(SenderRefusal::NotPaid)
        );
        assert_eq!(
            person(Role::Doctor, None, true).may_send_secure(),
            Err(SenderRefusal::NotPracticeUser)
        );
        for role in [Role::Patient, Role::Unknown] {
            assert_eq!(
                person(role, Some(1), true).may_send_secure(),
                Err(SenderRefusal::NotPracticeUser),
                "{role:?}"
            );
        }
        let mut left = person(Role::Doctor, Some(1), true);
        left.status = UserStatus::Deactivated;
        assert_eq!(
            left.may_send_secure(),
            Err(SenderRefusal::NotPracticeUser),
            "deactivated"
        );
        // Not being a practice user is said before not having paid.
        assert_eq!(
            person(Role::Patient, None, false).may_send_secure(),
            Err(SenderRefusal::NotPracticeUser)
        );
    }
}
