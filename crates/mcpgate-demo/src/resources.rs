//! Per-user resources: `user://profile` and the template `user://notes/{id}`.
//!
//! A note is readable only by its owner. Another user's note answers exactly
//! like a note that does not exist, so note ids leak nothing.

use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};

use crate::{
    error::DemoError,
    identity::Identity,
    notes::{self, NOTE_URI_TEMPLATE},
    store::Store,
};

/// The URI of the caller's profile.
pub(crate) const PROFILE_URI: &str = "user://profile";
const JSON: &str = "application/json";

/// The listed resources. The profile's URI is the same for everyone; what it
/// returns depends on who reads it.
pub(crate) fn list(who: &Identity) -> ListResourcesResult {
    ListResourcesResult::with_all_items(vec![
        Resource::new(PROFILE_URI, "profile")
            .with_title("Your profile")
            .with_description(format!(
                "Who you are to this server ({}) and how many notes you have",
                who.subject
            ))
            .with_mime_type(JSON),
    ])
}

/// The resource templates.
pub(crate) fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new(NOTE_URI_TEMPLATE, "note")
            .with_title("One of your notes")
            .with_description(
                "A note you created with create_secure_note; id from list_secure_notes",
            )
            .with_mime_type(JSON),
    ])
}

/// Reads `uri` on behalf of `who`.
pub(crate) async fn read(
    store: &Store,
    who: &Identity,
    uri: &str,
) -> Result<ReadResourceResult, DemoError> {
    let body = if uri == PROFILE_URI {
        let note_count = store.note_count(&who.subject).await?;
        serde_json::json!({
            "subject": who.subject.as_str(),
            "source": who.source.label(),
            "note_count": note_count,
        })
    } else if let Some(id) = notes::parse_note_uri(uri) {
        let note = store
            .note_of(&who.subject, id)
            .await?
            .ok_or_else(|| DemoError::NotFound(format!("you have no note {uri}")))?;
        serde_json::json!({
            "id": note.id,
            "title": note.title,
            "content": note.content,
            "created_at": note.created_at,
        })
    } else {
        return Err(DemoError::NotFound(format!(
            "no resource {uri}: this server has {PROFILE_URI} and {NOTE_URI_TEMPLATE}"
        )));
    };
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(body.to_string(), uri).with_mime_type(JSON),
    ]))
}
