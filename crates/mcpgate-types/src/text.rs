//! What every type of this crate is besides its constructor: text that was
//! checked once. The impls that only hand the text out are the same for
//! each, so they are written once here.

/// Implements, for a newtype `$t(String)`, the conversions that give its text
/// back: `From<$t> for String` (serde's `into`), `AsRef<str>`, `Display` and
/// comparison with `str`. The constructor (`TryFrom<String>`, `FromStr`)
/// stays with each type: it is where the RFC's rules are.
macro_rules! text_newtype {
    ($t:ident) => {
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
