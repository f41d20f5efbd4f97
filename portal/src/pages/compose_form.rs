//! Reading the compose form (`multipart/form-data`, RFC 7578): the text fields,
//! bounded, and each `file` part streamed straight into a staged upload of the
//! sender's (`store.uploads().stage_stream`), never whole in memory.

use axum::extract::Multipart;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use store::accounts::{Relationship, User};
use store::ids::MessageId;
use store::outgoing::{Draft, MAX_BODY};
use store::uploads::UploadId;

use crate::{AppState, Error};

/// The most parts one form may have (addresses, roles, uploads...).
const MAX_PARTS: usize = 500;
/// The longest text field other than the body.
const MAX_FIELD: usize = 64 * 1024;

/// The compose form as posted.
#[derive(Debug, Default, Clone)]
pub struct ComposeForm {
    pub to: String,
    pub cc: String,
    pub bcc: String,
    /// `role:<address>` fields, as given (address, role text).
    pub roles: Vec<(String, String)>,
    pub note: String,
    pub subject: String,
    pub body: String,
    /// Staged uploads: `upload` fields and files just staged from `file` parts.
    pub uploads: Vec<UploadId>,
    pub reply_to: Option<MessageId>,
    pub forward_of: Option<MessageId>,
    /// The sender confirmed the note holds no PHI.
    pub confirm_note: bool,
    /// Why a chosen file was not accepted (its type, its size), for the form.
    pub file_error: Option<String>,
}

/// Splits a comma- or semicolon-separated address field.
pub fn split_addresses(field: &str) -> Vec<String> {
    field
        .split([',', ';', '\n'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

fn id_field(value: &str) -> Result<Option<MessageId>, Error> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    // A forged or stale id is, like any message one may not see, not found.
    MessageId::parse(value.trim()).map(Some).ok_or(Error::NotFound)
}

impl ComposeForm {
    /// The draft this form describes; a role that is not one of the five is refused.
    pub fn draft(&self) -> Result<Draft, Error> {
        let mut roles = Vec::new();
        for (address, role) in &self.roles {
            if role.is_empty() {
                continue;
            }
            let role = Relationship::parse(role)
                .ok_or_else(|| Error::BadRequest("Please choose one of the listed relationships.".to_owned()))?;
            roles.push((address.trim().to_ascii_lowercase(), role));
        }
        Ok(Draft {
            to: split_addresses(&self.to),
            cc: split_addresses(&self.cc),
            bcc: split_addresses(&self.bcc),
            roles,
            note: self.note.trim().to_owned(),
            subject: store::Sealed::new(self.subject.trim().to_owned()),
            body: store::Sealed::new(self.body.clone()),
            reply_to: self.reply_to.clone(),
            forward_of: self.forward_of.clone(),
        })
    }

    /// Reads the posted form; `file` parts are staged as `owner`'s uploads as
    /// they arrive.
    pub async fn read(state: &AppState, owner: &User, mut multipart: Multipart) -> Result<Self, Error> {
        let mut form = Self::default();
        let bad = |_| Error::BadRequest("The form could not be read; please try again.".to_owned());
        let mut parts = 0;
        while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
            parts += 1;
            if parts > MAX_PARTS {
                return Err(Error::BadRequest("The form has too many fields.".to_owned()));
            }
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                let file_name = field.file_name().unwrap_or_default().trim().to_owned();
                match stage(state, owner, &file_name, &mut field).await {
                    Ok(Some(id)) => form.uploads.push(id),
                    Ok(None) => {}
                    // A refused file: said on the form, with everything else kept.
                    Err(Error::BadRequest(message)) => form.file_error = Some(message),
                    Err(other) => return Err(other),
                }
                continue;
            }
            let limit = if name == "body" { MAX_BODY } else { MAX_FIELD };
            let mut value = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                if value.len() + chunk.len() > limit {
                    return Err(Error::BadRequest(if name == "body" {
                        "The message is too long to send from the portal; attach it as a file.".to_owned()
                    } else {
                        "One of the fields is too long.".to_owned()
                    }));
                }
                value.extend_from_slice(&chunk);
            }
            let value = String::from_utf8(value).map_err(|_| Error::BadRequest("The form is not UTF-8.".to_owned()))?;
            // Browsers send CRLF in text areas; the message keeps LF.
            let value = value.replace("\r\n", "\n");
            match name.as_str() {
                "to" => form.to = value,
                "cc" => form.cc = value,
                "bcc" => form.bcc = value,
                "note" => form.note = value,
                "subject" => form.subject = value,
                "body" => form.body = value,
                "confirm_note" => form.confirm_note = !value.is_empty(),
                "reply_to_message" => form.reply_to = id_field(&value)?,
                "forward_of" => form.forward_of = id_field(&value)?,
                "upload" => {
                    // Another person's (or a made-up) upload is not found when opened.
                    let id = UploadId::parse(value.trim()).ok_or(Error::NotFound)?;
                    if !form.uploads.contains(&id) {
                        form.uploads.push(id);
                    }
                }
                _ => {
                    if let Some(address) = name.strip_prefix("role:") {
                        form.roles.push((address.to_owned(), value.trim().to_owned()));
                    }
                }
            }
        }
        Ok(form)
    }
}

/// Streams one `file` part into a staged upload; `None` for the empty part a
/// browser sends when no file was chosen.
async fn stage(
    state: &AppState,
    owner: &User,
    file_name: &str,
    field: &mut axum::extract::multipart::Field<'_>,
) -> Result<Option<UploadId>, Error> {
    let first = field
        .chunk()
        .await
        .map_err(|_| Error::BadRequest("A file could not be read; please try again.".to_owned()))?;
    let Some(first) = first.filter(|c| !c.is_empty()) else {
        if file_name.is_empty() {
            return Ok(None);
        }
        // An empty file: staged like any other.
        let empty = futures::stream::empty().boxed();
        let status = state.store.uploads().stage_stream(owner, file_name, empty).await?;
        return Ok(Some(status.id));
    };
    // The store wants a `'static` stream and the part borrows the form: a
    // small channel carries the chunks while both run in this task.
    let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<Bytes>>(4);
    let pump = async move {
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        loop {
            let next = match field.chunk().await {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => break,
                Err(error) => Err(std::io::Error::other(error.to_string())),
            };
            let failed = next.is_err();
            if tx.send(next).await.is_err() || failed {
                break;
            }
        }
    };
    let name = if file_name.is_empty() { "attachment" } else { file_name };
    let uploads = state.store.uploads();
    let ((), staged) = tokio::join!(pump, uploads.stage_stream(owner, name, rx.boxed()));
    Ok(Some(staged?.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_on_commas_and_semicolons() {
        assert_eq!(
            split_addresses(" a@x.example, b@y.example;c@z.example ,, "),
            vec!["a@x.example", "b@y.example", "c@z.example"]
        );
        assert!(split_addresses("  ").is_empty());
    }

    #[test]
    fn a_made_up_message_id_is_not_found() {
        assert!(matches!(id_field("../../etc"), Err(Error::NotFound)));
        assert!(id_field("").unwrap().is_none());
    }
}
