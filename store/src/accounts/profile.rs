//! Changing what a person's profile says about them after registration: for
//! now the time zone the portal shows times in.

use super::User;
use crate::{Accounts, Error, Result};

/// Longer values are not time zone names (the longest is 32 bytes).
const MAX_TIME_ZONE: usize = 64;

impl Accounts<'_> {
    /// Sets (or with `None` clears) `user`'s time zone. The caller checks the
    /// name against the tz database; here it must only be short and printable.
    pub async fn set_time_zone(&self, user: &User, time_zone: Option<&str>) -> Result<()> {
        let time_zone = time_zone.map(str::trim).filter(|z| !z.is_empty());
        if time_zone.is_some_and(|z| z.len() > MAX_TIME_ZONE || z.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(Error::invalid("Please choose a time zone from the list."));
        }
        let mut profile = self.user(user.id).await?.profile;
        profile.time_zone = time_zone.map(str::to_owned);
        sqlx::query("UPDATE users SET profile = $1 WHERE id = $2")
            .bind(serde_json::to_string(&profile).unwrap_or_else(|_| "{}".into()))
            .bind(user.id.0)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::ids::UserId;

    #[tokio::test]
    async fn the_time_zone_is_kept_with_the_rest_of_the_profile() {
        let (_dir, store, _) = crate::testing::store().await;
        let id: i64 = sqlx::Row::get(
            &sqlx::query(
                r#"INSERT INTO users (email, role, status, created_at, profile)
                   VALUES ('pat@example.org', 'patient', 'active', 0, '{"specialty":"Endodontics"}') RETURNING id"#,
            )
            .fetch_one(&store.db)
            .await
            .unwrap(),
            "id",
        );
        let accounts = store.accounts();
        let user = accounts.user(UserId(id)).await.unwrap();
        accounts.set_time_zone(&user, Some(" Europe/Paris ")).await.unwrap();
        let profile = accounts.user(user.id).await.unwrap().profile;
        assert_eq!(profile.time_zone.as_deref(), Some("Europe/Paris"));
        assert_eq!(profile.specialty.as_deref(), Some("Endodontics"), "the rest stays");
        for bad in ["x".repeat(65), "Europe/Paris\n".to_owned() + "x", "a b".to_owned()] {
            assert!(accounts.set_time_zone(&user, Some(&bad)).await.is_err(), "{bad:?}");
        }
        accounts.set_time_zone(&user, Some("")).await.unwrap();
        assert_eq!(accounts.user(user.id).await.unwrap().profile.time_zone, None);
    }
}
