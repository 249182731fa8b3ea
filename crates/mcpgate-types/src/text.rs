//! What every type of this crate is besides its rule: text that was checked once. The impls
//! that only hand the text out are the same for each, so they are written once here.
//!
//! `text_newtype!` gives a newtype `$t(String)` its text back (`as_str`, `From<$t> for String`
//! for serde's `into`, `AsRef<str>`, `Borrow<str>`, `Deref<Target = str>`, `Display`,
//! comparison with `str`): a checked value goes wherever text is read (a query parameter, a
//! log field), while only its constructor makes one from text; the
//! types whose constructor needs more than a check of the text (`RedirectUri`, `ResourceUri`,
//! `ClientId`) write `TryFrom<String>`/`FromStr` themselves, where the RFC's rules are.
//! `string_newtype!` adds those two for a type whose rule is `fn check(&str) -> Result<(), E>`.

macro_rules! text_newtype {
    ($t:ident) => {
        impl $t {
            /// The value as sent and stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

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

        impl std::ops::Deref for $t {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

macro_rules! string_newtype {
    ($t:ident, $err:ty, $check:path) => {
        text_newtype!($t);

        impl TryFrom<String> for $t {
            type Error = $err;

            fn try_from(s: String) -> Result<$t, $err> {
                $check(&s)?;
                Ok($t(s))
            }
        }

        impl std::str::FromStr for $t {
            type Err = $err;

            fn from_str(s: &str) -> Result<$t, $err> {
                $t::try_from(s.to_owned())
            }
        }
    };
}
