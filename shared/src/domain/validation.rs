//! Validation problems with field paths, gathered so a client sees all of them at once.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = ValidationErrors::default();
        errors.add(field, message);
        errors
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    pub fn check_name(&mut self, field: &str, value: &str) {
        let chars = value.chars().count();
        if value.trim().is_empty() || chars > MAX_NAME_CHARS {
            self.add(
                field,
                format!("must be 1..{MAX_NAME_CHARS} characters and not blank"),
            );
        }
    }

    pub fn check_tags(&mut self, field: &str, tags: &[String]) {
        if tags.len() > MAX_TAGS {
            self.add(field, format!("at most {MAX_TAGS} tags"));
        }
        for (i, tag) in tags.iter().enumerate() {
            if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS {
                self.add(
                    format!("{field}[{i}]"),
                    format!("must be 1..{MAX_TAG_CHARS} characters"),
                );
            }
        }
    }
}

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 100;
