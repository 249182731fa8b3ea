//! The `note_summary` prompt: a ready-made request to summarize one of the
//! caller's notes.

use rmcp::model::{
    GetPromptResult, JsonObject, ListPromptsResult, Prompt, PromptArgument, PromptMessage, Role,
};

use crate::{error::DemoError, identity::Identity, notes, store::Store};

/// The prompt's name.
pub(crate) const NOTE_SUMMARY: &str = "note_summary";
const NOTE_ID_ARG: &str = "note_id";

/// The listed prompts.
pub(crate) fn list() -> ListPromptsResult {
    ListPromptsResult::with_all_items(vec![Prompt::new(
        NOTE_SUMMARY,
        Some("Ask the model to summarize one of your notes"),
        Some(vec![
            PromptArgument::new(NOTE_ID_ARG)
                .with_description("The note's id, as shown by list_secure_notes")
                .with_required(true),
        ]),
    )])
}

/// Renders prompt `name` for `who`.
pub(crate) async fn get(
    store: &Store,
    who: &Identity,
    name: &str,
    arguments: Option<&JsonObject>,
) -> Result<GetPromptResult, DemoError> {
    if name != NOTE_SUMMARY {
        return Err(DemoError::InvalidInput(format!(
            "no prompt named {name:?}; this server has {NOTE_SUMMARY}"
        )));
    }
    // Prompt arguments are strings on the wire, but accept a JSON number too.
    let id = match arguments.and_then(|args| args.get(NOTE_ID_ARG)) {
        Some(serde_json::Value::String(raw)) => notes::parse_note_id(raw)?,
        Some(serde_json::Value::Number(number)) => notes::parse_note_id(&number.to_string())?,
        Some(_) | None => {
            return Err(DemoError::InvalidInput(format!(
                "{NOTE_SUMMARY} needs the argument {NOTE_ID_ARG}: a note id from list_secure_notes"
            )));
        }
    };
    // Not `NotFound`: for a prompt, a wrong id is a bad argument.
    let note = store
        .note_of(&who.subject, id)
        .await?
        .ok_or_else(|| DemoError::InvalidInput(format!("you have no note with id {id}")))?;
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(
        Role::User,
        format!(
            "Summarize my note \"{}\" in two or three sentences:\n\n{}",
            note.title, note.content
        ),
    )])
    .with_description(format!("Summary request for note {id}")))
}
