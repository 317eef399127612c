//! The domain: pure types and rules, no I/O.

/// Declares a fieldless enum named by its variants in snake_case, for serde and for every
/// name list alike: `VARIANTS` (strum's `VariantNames`), `all()`, `as_str()`, `parse()` and
/// `Display`. Further derives and docs go in the attributes before `enum`.
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            utoipa::ToSchema,
            strum::VariantNames,
            strum::EnumString,
            strum::IntoStaticStr,
            strum::EnumIter,
            strum::Display,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        $vis enum $name { $($body)* }

        impl $name {
            /// Every variant, in declaration order.
            pub fn all() -> impl Iterator<Item = $name> {
                <$name as strum::IntoEnumIterator>::iter()
            }

            /// The name serde reads and writes.
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// The variant a name names (case-sensitive).
            pub fn parse(name: &str) -> Option<$name> {
                name.parse().ok()
            }
        }
    };
}
pub(crate) use named_enum;

pub mod analytics;
pub mod catalog;
pub mod clock;
pub mod errors;
pub mod events;
pub mod execution;
pub mod ids;
pub mod log;
pub mod quarantine;
pub mod schema;
pub mod step_outcome;
pub mod time;
pub mod validation;
pub mod workflow;
