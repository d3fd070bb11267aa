//! Property tests of the line framer (PROTOCOL.md section 1).
use chatroom::line::{Frame, LineReader};
use proptest::prelude::*;

/// What the framer must produce for `stream` in one piece: each LF-ended
/// line (a CR before the LF dropped) as `Some`, or `None` if too long; and
/// for the unfinished tail, `None` once it can no longer fit.
fn model(stream: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
    let mut parts: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let tail = parts.pop().unwrap();
    let mut out: Vec<Option<Vec<u8>>> = parts
        .into_iter()
        .map(|p| {
            let p = p.strip_suffix(b"\r").unwrap_or(p);
            (p.len() <= max).then(|| p.to_vec())
        })
        .collect();
    if tail.len() > max + 1 {
        out.push(None);
    }
    out
}

/// Feeds `stream` cut at `cuts` (positions, any order, repeats allowed).
fn run(stream: &[u8], cuts: &[usize], max: usize) -> Vec<Option<Vec<u8>>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (stream.len() + 1)).collect();
    cuts.push(0);
    cuts.push(stream.len());
    cuts.sort_unstable();
    let mut reader = LineReader::new(max);
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        reader.feed(&stream[w[0]..w[1]], |f| {
            match f {
                Frame::Line(l) => {
                    assert!(l.len() <= max, "line of {} bytes > {max}", l.len());
                    assert!(!l.contains(&b'\n'));
                    out.push(Some(l.to_vec()));
                }
                Frame::TooLong => out.push(None),
            }
            true
        });
        // Memory: never more than one line's worth held.
        assert!(reader.buffered() <= max + 1, "{} held", reader.buffered());
    }
    out
}

/// Bytes with many LFs, CRs and runs, so lines near the limit are common.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => Just(b'a'),
        2 => Just(b'\n'),
        2 => Just(b'\r'),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_split_gives_the_same_frames(
        s in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..30),
        max in 1usize..24,
    ) {
        let whole = run(&s, &[], max);
        prop_assert_eq!(&whole, &model(&s, max));
        prop_assert_eq!(run(&s, &cuts, max), whole);
    }

    #[test]
    fn byte_by_byte_gives_the_same_frames(s in stream(), max in 1usize..24) {
        let cuts: Vec<usize> = (0..=s.len()).collect();
        prop_assert_eq!(run(&s, &cuts, max), model(&s, max));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        s in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
        max in 0usize..64,
    ) {
        prop_assert_eq!(run(&s, &cuts, max), model(&s, max));
    }

    /// One TooLong per over-long line, however long and however cut.
    #[test]
    fn one_too_long_per_long_line(
        lens in prop::collection::vec(0usize..300, 1..8),
        chunk in 1usize..50,
        max in 1usize..40,
    ) {
        let mut s = Vec::new();
        for &n in &lens {
            s.extend(std::iter::repeat_n(b'x', n));
            s.push(b'\n');
        }
        let cuts: Vec<usize> = (0..s.len()).step_by(chunk).collect();
        let got = run(&s, &cuts, max);
        prop_assert_eq!(got.len(), lens.len());
        for (g, &n) in got.iter().zip(&lens) {
            prop_assert_eq!(g.is_none(), n > max);
        }
    }
}
