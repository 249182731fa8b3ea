//! Properties of the SSE parser: how a stream is cut into chunks must not
//! change the events it yields, and no input makes it panic.

use proptest::prelude::*;

use super::{Event, Parser, TooLarge};

/// Runs `bytes` through a parser in the chunks that `cuts` describes.
fn parse_in_chunks(bytes: &[u8], cuts: &[usize]) -> Result<Vec<Event>, TooLarge> {
    let mut parser = Parser::new(1 << 20);
    let mut events = Vec::new();
    let mut at = 0;
    for &cut in cuts {
        let end = (at + cut).min(bytes.len());
        events.extend(parser.feed(&bytes[at..end])?);
        at = end;
    }
    events.extend(parser.feed(&bytes[at..])?);
    Ok(events)
}

/// One SSE line, with each kind of line ending.
fn line() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("data"),
        Just("event"),
        Just("id"),
        Just("retry"),
        Just(""),
        Just(":comment"),
    ];
    let value = "[a-z0-9 :{}\"]{0,12}";
    let ending = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    (field, value, proptest::bool::ANY, ending).prop_map(|(f, v, colon, end)| {
        if f.is_empty() {
            end.to_owned()
        } else if colon {
            format!("{f}: {v}{end}")
        } else {
            format!("{f}{end}")
        }
    })
}

proptest! {
    /// Any chunking of a well-formed stream yields the events of the whole stream.
    #[test]
    fn chunking_does_not_change_events(
        lines in proptest::collection::vec(line(), 0..40),
        cuts in proptest::collection::vec(0usize..16, 0..40),
    ) {
        let stream = lines.concat();
        let whole = parse_in_chunks(stream.as_bytes(), &[]).expect("within limit");
        let chunked = parse_in_chunks(stream.as_bytes(), &cuts).expect("within limit");
        prop_assert_eq!(whole, chunked);
    }

    /// Arbitrary bytes in arbitrary chunks never panic, and a small limit is enforced.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(0usize..64, 0..32),
    ) {
        let mut parser = Parser::new(256);
        let mut at = 0;
        for cut in cuts {
            let end = (at + cut).min(bytes.len());
            match parser.feed(&bytes[at..end]) {
                Ok(events) => {
                    for e in events {
                        prop_assert!(e.data.len() <= 256 + 16);
                    }
                }
                Err(_) => return Ok(()),
            }
            at = end;
        }
    }
}
