//! The Microsoft 365 tenant check on the relay port. Exchange Online connectors
//! cannot authenticate with SMTP AUTH, and its outbound IP ranges are shared by
//! every tenant, so trusting those ranges alone would let any Microsoft 365
//! organisation relay through the gateway. With `smtp.relay_tenant_id` set, a
//! relayed message must carry `X-MS-Exchange-CrossTenant-Id` (stamped by
//! Exchange Online on mail leaving a tenant) with exactly that tenant id, in
//! every copy of the header present; otherwise it is refused with 550 5.7.1.

use store::ingest::headers::raw_header_values;

use super::ListenerKind;
use super::reply::Reply;
use super::session::Session;

/// The header Exchange Online stamps with the sending tenant's id.
pub const TENANT_HEADER: &str = "X-MS-Exchange-CrossTenant-Id";

impl Session {
    /// Refuses a relayed message from another (or no) Microsoft 365 tenant.
    pub(super) fn check_tenant(&self, header_block: &[u8]) -> Result<(), Reply> {
        let Some(expected) = &self.server.config.relay_tenant_id else {
            return Ok(());
        };
        if self.kind != ListenerKind::Relay || self.user.is_some() {
            return Ok(());
        }
        let values = raw_header_values(header_block, TENANT_HEADER);
        if !values.is_empty() && values.iter().all(|v| v.trim().eq_ignore_ascii_case(expected)) {
            return Ok(());
        }
        tracing::warn!(peer = %self.peer.ip(), found = values.len(), "relayed message from another tenant refused");
        Err(Reply::new(
            550,
            "5.7.1",
            format!(
                "Relaying denied: this gateway relays only for its own Microsoft 365 organisation ({TENANT_HEADER} does not match)"
            ),
        ))
    }
}
