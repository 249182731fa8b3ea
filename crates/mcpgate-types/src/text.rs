//! What every string newtype of this crate has besides its rule: `as_str`,
//! `FromStr`, `TryFrom<String>` (serde deserializes through it), `Display`,
//! and comparison with plain text. Written once here so each type's file holds
//! only its rule and its tests.

/// Implements the common traits for `$ty(String)` whose constructor is
/// `fn check(&str) -> Result<(), $err>`.
macro_rules! string_newtype {
    ($ty:ident, $err:ty, $check:path) => {
        impl $ty {
            /// The value as sent and stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $err;

            fn try_from(s: String) -> Result<$ty, $err> {
                $check(&s)?;
                Ok($ty(s))
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $err;

            fn from_str(s: &str) -> Result<$ty, $err> {
                $ty::try_from(s.to_owned())
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) use string_newtype;
