//! The JSON of the reward command's protocol (see [`crate::external`] and
//! [`crate::external_episodes`]): the requests' fields (the process layer prefixes each
//! with its `line`), and each kind of answer parsed and checked, with an error that says
//! what is wrong and quotes the answer.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::env::Phase;
use crate::space::KHotSpace;
use crate::text::{printable, quote, truncate};

// Requests.

/// The `step` (training requests after [`Environment::reset_step`] only) and `seed` a
/// request carries.
///
/// [`Environment::reset_step`]: crate::Environment::reset_step
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestSeed {
    /// The training step.
    pub(crate) step: Option<u64>,
    /// In `[0, 2^53)`.
    pub(crate) seed: u64,
}

impl RequestSeed {
    /// The fields `"step":T,"seed":S` (or `"seed":S`), each after a comma.
    pub(crate) fn fields(self) -> String {
        match self.step {
            Some(step) => format!(",\"step\":{step},\"seed\":{}", self.seed),
            None => format!(",\"seed\":{}", self.seed),
        }
    }

    /// The fixed seed of `phase`'s evaluation requests (1 validation, 2 test), no step.
    pub(crate) fn held_out(phase: Phase) -> Self {
        Self { step: None, seed: held_out_seed(phase) }
    }
}

/// The `seed` of the held-out contexts of `phase` (contextual mode).
fn held_out_seed(phase: Phase) -> u64 {
    match phase {
        Phase::Validation => 1,
        Phase::Test => 2,
    }
}

/// `seed` cut to 53 bits (its high bits), exact as a JSON number in every language.
pub(crate) fn json_seed(seed: u64) -> u64 {
    seed >> 11
}

/// The fields of a rewards request of `cmd`: its `phase`, the marker of the `random`
/// baseline's request (`baseline`), its `step` and `seed`, `n` and `k`, its `rows` in
/// contextual mode, and the `actions`, each the sorted items of one action.
///
/// # Errors
/// The actions cannot be written as JSON.
pub(crate) fn rewards_fields(
    phase: &str,
    seed: Option<RequestSeed>,
    baseline: bool,
    space: KHotSpace,
    rows: Option<usize>,
    actions: &[Vec<usize>],
) -> Result<String, serde_json::Error> {
    let actions = serde_json::to_string(actions)?;
    let (n, k) = (space.n(), space.k());
    let rows = rows.map(|rows| format!(",\"rows\":{rows}")).unwrap_or_default();
    let seed = seed.map(RequestSeed::fields).unwrap_or_default();
    let marker = if baseline { ",\"baseline\":\"random\"" } else { "" };
    Ok(format!(
        "\"phase\":{},\"request\":\"rewards\"{marker}{seed},\"n\":{n},\"k\":{k}{rows},\"actions\":{actions}",
        Value::from(phase)
    ))
}

/// The fields of a contexts request of `cmd` (contextual mode) for `rows` contexts.
pub(crate) fn contexts_fields(phase: &str, seed: RequestSeed, rows: usize) -> String {
    format!("\"phase\":{},\"request\":\"contexts\"{},\"rows\":{rows}", Value::from(phase), seed.fields())
}

/// The fields of a reset request of `cmd-episodes`: one episode per seed, each cut to 53
/// bits ([`json_seed`]).
pub(crate) fn reset_fields(phase: &str, space: KHotSpace, seeds: &[u64]) -> String {
    let (n, k) = (space.n(), space.k());
    let seeds: Vec<String> = seeds.iter().map(|&seed| json_seed(seed).to_string()).collect();
    format!("\"request\":\"reset\",\"phase\":\"{phase}\",\"n\":{n},\"k\":{k},\"seeds\":[{}]", seeds.join(","))
}

/// The fields of a step request of `cmd-episodes`: step `t` of the episodes, one action per
/// episode (its sorted items).
///
/// # Errors
/// The actions cannot be written as JSON.
pub(crate) fn step_fields(phase: &str, t: usize, actions: &[Vec<usize>]) -> Result<String, serde_json::Error> {
    let actions = serde_json::to_string(actions)?;
    Ok(format!("\"request\":\"step\",\"phase\":\"{phase}\",\"t\":{t},\"actions\":{actions}"))
}

/// The fields of a baseline request of `cmd-episodes`: the actions that the command's own
/// policy `name` takes at step `t` of the held-out episodes of `phase`, `k` of `n` items.
pub(crate) fn baseline_fields(phase: &str, space: KHotSpace, name: &str, t: usize) -> String {
    let (n, k) = (space.n(), space.k());
    format!(
        "\"request\":\"baseline\",\"phase\":\"{phase}\",\"baseline\":{},\"t\":{t},\"n\":{n},\"k\":{k}",
        Value::from(name)
    )
}

// Answers of `cmd`.

/// A parsed answer: one reward per action, the diagnostics, and the command's baselines.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    /// One reward per action.
    pub(crate) rewards: Vec<f64>,
    /// The diagnostics.
    pub(crate) info: BTreeMap<String, f64>,
    /// The command's own baselines (only in the answer to the baseline request).
    pub(crate) baselines: BTreeMap<String, f64>,
}

/// Parses an answer line: a JSON array of `expected` numbers finite in f32, or an object
/// `{"rewards": [...], "info": {"name": number, ...}}` (`info` optional); the answer to
/// the baseline request (`baseline` true) may also have `"baselines": {"name": number,
/// ...}`. The error says what is wrong and quotes the start of the line.
pub(crate) fn parse_answer(text: &str, expected: usize, baseline: bool) -> Result<Answer, String> {
    // The usual answer, an array of numbers, without a `Value` (32 bytes) per number; the
    // general path below says what is wrong with any other.
    if let Ok(rewards) = serde_json::from_str::<Vec<f64>>(text)
        && rewards.len() == expected
        && rewards.iter().all(|&x| fits_f32(x))
    {
        return Ok(Answer { rewards, info: BTreeMap::new(), baselines: BTreeMap::new() });
    }
    let value: Value = serde_json::from_str(text).map_err(|e| not_json(&e, text))?;
    let (items, info, baselines) = match &value {
        Value::Array(items) => (items, BTreeMap::new(), BTreeMap::new()),
        Value::Object(map) => {
            let Some(Value::Array(items)) = map.get("rewards") else {
                return Err(format!("the answer is an object without a \"rewards\" array: {}", quote(text)));
            };
            let info = parse_info(map, text)?;
            let baselines = match map.get("baselines") {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(_) if !baseline => {
                    return Err(format!(
                        "\"baselines\" belong in the answer to the baseline request (the one with \"baseline\": \
                         \"random\"), not in this one: {}",
                        quote(text)
                    ));
                }
                Some(value) => parse_baselines(value).map_err(|why| format!("{why}: {}", quote(text)))?,
            };
            (items, info, baselines)
        }
        _ => {
            return Err(format!(
                "the answer must be a JSON array of rewards or an object {{\"rewards\": [...], \"info\": {{...}}}}: {}",
                quote(text)
            ));
        }
    };
    if items.len() != expected {
        return Err(format!("the answer has {} rewards for {expected} actions: {}", items.len(), quote(text)));
    }
    let rewards = items
        .iter()
        .enumerate()
        .map(|(i, v)| f32_number(v).map_err(|why| format!("reward {i} is {why}: {}", quote(text))))
        .collect::<Result<_, _>>()?;
    Ok(Answer { rewards, info, baselines })
}

/// Parses a command's `baselines`: an object of names (as [`check_key`] accepts, other than
/// `random`) to finite numbers; what is wrong, otherwise.
fn parse_baselines(value: &Value) -> Result<BTreeMap<String, f64>, String> {
    let Value::Object(map) = value else {
        return Err(format!("the answer's \"baselines\" is {}, not an object of names to numbers", short(value)));
    };
    map.iter()
        .map(|(name, v)| {
            check_baseline_name(name)?;
            match v.as_f64() {
                Some(x) if x.is_finite() => Ok((name.clone(), x)),
                _ => Err(format!("baseline \"{name}\" is {}, not a finite number", short(v))),
            }
        })
        .collect()
}

/// The `info` of an answer object `map` (of the line `text`): an object of names to finite
/// numbers, or none (absent or `null`). The names must be keys ([`check_key`]): each becomes
/// the metric `info.NAME` ([`info_metric`]) in every file of a run, as written. The error
/// says what is wrong and quotes the line.
///
/// [`info_metric`]: crate::info_metric
fn parse_info(map: &serde_json::Map<String, Value>, text: &str) -> Result<BTreeMap<String, f64>, String> {
    match map.get("info") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(info)) => info
            .iter()
            .map(|(name, v)| {
                check_key(name).map_err(|why| format!("the info name {} {why}: {}", quoted_name(name), quote(text)))?;
                match v.as_f64() {
                    Some(x) if x.is_finite() => Ok((name.clone(), x)),
                    _ => Err(format!("info \"{name}\" is {}, not a number: {}", short(v), quote(text))),
                }
            })
            .collect(),
        Some(_) => Err(format!("the answer's \"info\" is not an object of numbers: {}", quote(text))),
    }
}

/// Parses the answer to a contexts request: an object `{"contexts": [[x, ...], ...]}`
/// with exactly `rows` rows of exactly `dim` numbers finite in f32; the values
/// row by row. The error says what is wrong and quotes the start of the line.
pub(crate) fn parse_contexts(text: &str, rows: usize, dim: usize) -> Result<Vec<f32>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| not_json(&e, text))?;
    let Some(Value::Array(items)) = value.as_object().and_then(|map| map.get("contexts")) else {
        return Err(format!(
            "the answer to a contexts request must be an object {{\"contexts\": [[number, ...], ...]}}: {}",
            quote(text)
        ));
    };
    parse_rows(items, rows, dim, "context", text)
}

/// Reads `items` (from the answer line `text`) as exactly `rows` rows of exactly `dim`
/// numbers finite in f32, each a `what` row (`context`, `state`); the values row by row.
/// The error says what is wrong (`got 3 context rows, expected 4`, `state row 2 has 5
/// numbers, expected 3`, `context row 1, entry 2 is null, not a finite number`) and
/// quotes the start of the line.
fn parse_rows(items: &[Value], rows: usize, dim: usize, what: &str, text: &str) -> Result<Vec<f32>, String> {
    if items.len() != rows {
        return Err(format!("got {} {what} rows, expected {rows}: {}", items.len(), quote(text)));
    }
    let mut values = Vec::with_capacity(rows * dim);
    for (r, row) in items.iter().enumerate() {
        let Value::Array(row) = row else {
            return Err(format!("{what} row {r} is {}, not an array of {dim} numbers: {}", short(row), quote(text)));
        };
        if row.len() != dim {
            return Err(format!("{what} row {r} has {} numbers, expected {dim}: {}", row.len(), quote(text)));
        }
        for (j, v) in row.iter().enumerate() {
            let x = f32_number(v).map_err(|why| format!("{what} row {r}, entry {j} is {why}: {}", quote(text)))?;
            values.push(x as f32);
        }
    }
    Ok(values)
}

/// The number `value` if f32 can hold it (rewards and contexts become f32 tensors), or
/// what it is instead (`null, not a finite number`, `1e39, outside the range of f32
/// (±3.4e38)`).
fn f32_number(value: &Value) -> Result<f64, String> {
    match value.as_f64() {
        Some(x) if fits_f32(x) => Ok(x),
        Some(x) if x.is_finite() => Err(format!("{x:e}, outside the range of f32 (±3.4e38)")),
        _ => Err(format!("{}, not a finite number", short(value))),
    }
}

/// Whether `x` is finite and stays finite as an f32 (at most about 3.4e38 in magnitude).
fn fits_f32(x: f64) -> bool {
    (x as f32).is_finite()
}

/// The error for an answer that is not JSON.
fn not_json(error: &serde_json::Error, text: &str) -> String {
    format!(
        "the answer is not JSON ({error}): {} (the command must print exactly one JSON line per request on stdout; \
         logs go to stderr)",
        quote(text)
    )
}

// Answers of `cmd-episodes`.

/// The answer to a step request, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepAnswer {
    /// One reward per episode.
    pub(crate) rewards: Vec<f64>,
    /// Whether each episode reached a terminal state.
    pub(crate) terminated: Vec<bool>,
    /// Whether each episode was cut short.
    pub(crate) truncated: Vec<bool>,
    /// The next states, row by row.
    pub(crate) states: Vec<f32>,
    /// The diagnostics.
    pub(crate) info: BTreeMap<String, f64>,
}

/// The answer `text` as a JSON object, or what is wrong with it (`shape` describes the
/// object expected).
fn answer_object(text: &str, shape: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_str(text).map_err(|e| not_json(&e, text))? {
        Value::Object(map) => Ok(map),
        _ => Err(format!("the answer must be an object {shape}: {}", quote(text))),
    }
}

/// The array `field` of the answer `map`, or what is wrong.
fn array<'a>(map: &'a serde_json::Map<String, Value>, field: &str, text: &str) -> Result<&'a [Value], String> {
    match map.get(field) {
        Some(Value::Array(items)) => Ok(items),
        None => Err(format!("the answer has no \"{field}\": {}", quote(text))),
        Some(other) => Err(format!("the answer's \"{field}\" is {}, not an array: {}", short(other), quote(text))),
    }
}

/// Parses the answer to a reset request: `{"states": [[x, ...], ...]}` with exactly `rows`
/// rows of exactly `dim` numbers finite in f32; the values row by row.
pub(crate) fn parse_reset(text: &str, rows: usize, dim: usize) -> Result<Vec<f32>, String> {
    let map = answer_object(text, "{\"states\": [[number, ...], ...]} (one row per seed)")?;
    parse_rows(array(&map, "states", text)?, rows, dim, "state", text)
}

/// Parses the answer to a step request: an object with `rewards` (`rows` numbers finite in
/// f32), `terminated` (`rows` booleans), `states` (`rows` rows of `dim` numbers), and
/// optionally `truncated` (`rows` booleans; `null` or absent: none) and `info`.
pub(crate) fn parse_step(text: &str, rows: usize, dim: usize) -> Result<StepAnswer, String> {
    let map = answer_object(
        text,
        "{\"rewards\": [number, ...], \"terminated\": [bool, ...], \"states\": [[number, ...], ...]}",
    )?;
    let rewards = array(&map, "rewards", text)?;
    if rewards.len() != rows {
        return Err(format!("the answer has {} rewards for {rows} episodes: {}", rewards.len(), quote(text)));
    }
    let rewards = rewards
        .iter()
        .enumerate()
        .map(|(i, v)| f32_number(v).map_err(|why| format!("reward {i} is {why}: {}", quote(text))))
        .collect::<Result<_, _>>()?;
    let terminated = flags(array(&map, "terminated", text)?, "terminated", rows, text)?;
    let truncated = match map.get("truncated") {
        None | Some(Value::Null) => vec![false; rows],
        Some(_) => flags(array(&map, "truncated", text)?, "truncated", rows, text)?,
    };
    let states = parse_rows(array(&map, "states", text)?, rows, dim, "state", text)?;
    let info = parse_info(&map, text)?;
    Ok(StepAnswer { rewards, terminated, truncated, states, info })
}

/// `rows` booleans of the answer's `field`, or what is wrong.
fn flags(items: &[Value], field: &str, rows: usize, text: &str) -> Result<Vec<bool>, String> {
    if items.len() != rows {
        return Err(format!("the answer has {} {field} flags for {rows} episodes: {}", items.len(), quote(text)));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_bool().ok_or_else(|| format!("{field} {i} is {}, not true or false: {}", short(v), quote(text)))
        })
        .collect()
}

/// Parses the answer to a baseline request: `{"actions": [[i, ...], ...]}` with exactly
/// `rows` actions, each `k` distinct items in `0..n` of `space` (in any order); each
/// action's items sorted. The error says what is wrong (`got 3 actions, expected 4`,
/// `action 1 has 3 items, expected 2`, `action 0 has the item 9, outside 0..8`, `action 2
/// repeats the item 4`) and quotes the start of the line.
pub(crate) fn parse_actions(text: &str, rows: usize, space: KHotSpace) -> Result<Vec<Vec<usize>>, String> {
    let (n, k) = (space.n(), space.k());
    let map = answer_object(text, "{\"actions\": [[item, ...], ...]} (one action of k items per episode)")?;
    let items = array(&map, "actions", text)?;
    if items.len() != rows {
        return Err(format!("got {} actions, expected {rows} (one per episode): {}", items.len(), quote(text)));
    }
    items
        .iter()
        .enumerate()
        .map(|(r, action)| {
            let Value::Array(action) = action else {
                return Err(format!("action {r} is {}, not an array of {k} items: {}", short(action), quote(text)));
            };
            if action.len() != k {
                return Err(format!("action {r} has {} items, expected {k}: {}", action.len(), quote(text)));
            }
            let mut chosen = action
                .iter()
                .map(|item| match item.as_u64().and_then(|i| usize::try_from(i).ok()) {
                    Some(i) if i < n => Ok(i),
                    _ if item.is_i64() || item.is_u64() => {
                        Err(format!("action {r} has the item {}, outside 0..{n}: {}", short(item), quote(text)))
                    }
                    _ => Err(format!(
                        "action {r} has the item {}, not an integer in 0..{n}: {}",
                        short(item),
                        quote(text)
                    )),
                })
                .collect::<Result<Vec<usize>, String>>()?;
            chosen.sort_unstable();
            if let Some(pair) = chosen.windows(2).find(|pair| pair[0] == pair[1]) {
                return Err(format!("action {r} repeats the item {}: {}", pair[0], quote(text)));
            }
            Ok(chosen)
        })
        .collect()
}

/// The names of the command's own baselines (the option `baselines` of `cmd-episodes`):
/// comma-separated keys ([`check_key`]), spaces around them ignored, none `random`, none
/// twice. What is wrong, otherwise.
pub(crate) fn parse_baseline_names(text: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for name in text.split(',').map(str::trim) {
        check_baseline_name(name)?;
        if !seen.insert(name) {
            return Err(format!("the baseline name \"{name}\" is given twice"));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

// Checks and quotes shared by the answers.

/// The name of the random-subset baseline, which a command's own baselines cannot take.
pub(crate) const RANDOM_BASELINE: &str = "random";
/// The longest name of an environment or a command's baseline.
const MAX_KEY_CHARS: usize = 64;

/// Checks that `name` can be a key (of `baselines` or `info`, `baseline.NAME` or `info.NAME`
/// in the metrics, a folder or a table column): 1 to [`MAX_KEY_CHARS`] ASCII letters,
/// digits, `_` or `-`. What is wrong, otherwise.
fn check_key(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.chars().count() > MAX_KEY_CHARS {
        return Err(format!("is longer than {MAX_KEY_CHARS} characters"));
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        Some(c) => {
            Err(format!("has the character {}; use ASCII letters, digits, '_' and '-'", printable(&format!("{c:?}"))))
        }
        None => Ok(()),
    }
}

/// Checks the name of a command's own baseline: a key ([`check_key`]) other than
/// [`RANDOM_BASELINE`]. What is wrong, otherwise.
fn check_baseline_name(name: &str) -> Result<(), String> {
    check_key(name).map_err(|why| format!("the baseline name {} {why}", quoted_name(name)))?;
    if name == RANDOM_BASELINE {
        return Err(format!(
            "the baseline name \"{RANDOM_BASELINE}\" is taken (the mean score of random subsets); choose another"
        ));
    }
    Ok(())
}

/// A name from an answer as a JSON string (in double quotes), cut short, its control
/// characters escaped.
fn quoted_name(name: &str) -> String {
    short(&Value::from(name))
}

/// A JSON value as written, cut short, its control characters escaped ([`printable`]).
fn short(value: &Value) -> String {
    printable(&truncate(&value.to_string(), 40))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arrays_and_objects_with_info() {
        let answer = parse_answer("[0.5, -2, 1e3]", 3, false).unwrap();
        assert_eq!(answer.rewards, vec![0.5, -2.0, 1000.0]);
        assert!(answer.info.is_empty());
        let answer = parse_answer(r#"{"rewards": [1], "info": {"acc": 0.25, "n": 3}}"#, 1, false).unwrap();
        assert_eq!(answer.rewards, vec![1.0]);
        assert_eq!(answer.info, BTreeMap::from([("acc".to_owned(), 0.25), ("n".to_owned(), 3.0)]));
        assert_eq!(parse_answer(r#"{"rewards": [], "info": null}"#, 0, false).unwrap().rewards, Vec::<f64>::new());
    }

    #[test]
    fn rejects_malformed_answers_saying_why() {
        let err = |text: &str, expected| parse_answer(text, expected, false).unwrap_err();
        assert!(err("not json", 1).contains("not JSON") && err("not json", 1).contains("'not json'"));
        assert!(err(r#"[1, "a"]"#, 2).contains(r#"reward 1 is "a""#));
        assert!(err("[null]", 1).contains("reward 0 is null"));
        assert!(err(r#"["NaN"]"#, 1).contains("not a finite number"));
        assert!(err("[1, 2, 1e39]", 3).contains("reward 2 is 1e39, outside the range of f32 (±3.4e38)"));
        assert!(err(r#"{"rewards": [-1e39]}"#, 1).contains("reward 0 is -1e39, outside the range of f32"));
        assert_eq!(parse_answer("[3e38, -3e38]", 2, false).unwrap().rewards, vec![3e38, -3e38]);
        assert!(err("[1, 2]", 3).contains("2 rewards for 3 actions"));
        assert!(err("3", 1).contains("must be a JSON array"));
        assert!(err(r#"{"reward": [1]}"#, 1).contains("without a \"rewards\" array"));
        assert!(err(r#"{"rewards": [1], "info": {"a": "b"}}"#, 1).contains("info \"a\""));
        assert!(err(r#"{"rewards": [1], "info": [1]}"#, 1).contains("\"info\" is not an object"));
    }

    #[test]
    fn the_baseline_answer_may_carry_the_commands_baselines() {
        let text = r#"{"rewards": [1, 2], "baselines": {"greedy": 0.75, "qr_2": -3}}"#;
        let answer = parse_answer(text, 2, true).unwrap();
        assert_eq!(answer.baselines, BTreeMap::from([("greedy".to_owned(), 0.75), ("qr_2".to_owned(), -3.0)]));
        assert!(parse_answer("[1]", 1, true).unwrap().baselines.is_empty());
        assert!(parse_answer(r#"{"rewards": [1], "baselines": null}"#, 1, true).unwrap().baselines.is_empty());
        // Anywhere else they are a mistake, said as such.
        let err = parse_answer(text, 2, false).unwrap_err();
        assert!(err.contains("\"baselines\" belong in the answer to the baseline request"), "{err}");
    }

    #[test]
    fn rejects_bad_baselines_saying_why() {
        let err = |baselines: &str| {
            parse_answer(&format!(r#"{{"rewards": [1], "baselines": {baselines}}}"#), 1, true).unwrap_err()
        };
        assert!(err("[0.5]").contains("\"baselines\" is [0.5], not an object of names to numbers"));
        assert!(err(r#"{"greedy": "0.5"}"#).contains(r#"baseline "greedy" is "0.5", not a finite number"#));
        assert!(err(r#"{"greedy": null}"#).contains(r#"baseline "greedy" is null, not a finite number"#));
        assert!(err(r#"{"": 1}"#).contains(r#"the baseline name "" is empty"#));
        assert!(err(r#"{"a.b": 1}"#).contains(r#"the baseline name "a.b" has the character '.'"#));
        assert!(err(r#"{"a b": 1}"#).contains("has the character ' '"));
        assert!(err(&format!(r#"{{"{}": 1}}"#, "x".repeat(65))).contains("is longer than 64 characters"));
        assert!(err(r#"{"random": 1}"#).contains("\"random\" is taken"));
        assert!(err(r#"{"greedy": 1, "bad/name": 2}"#).contains("'{\"rewards\": [1]"), "the answer is quoted");
    }

    #[test]
    fn keys_are_ascii_words_with_underscores_and_dashes() {
        for good in ["cmd", "facility-location", "greedy_2", "A", &"x".repeat(64)] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        for bad in ["", "a.b", "a/b", "é", "a b", "tab\t", &"x".repeat(65)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_seeds_are_53_bit_fields() {
        assert_eq!(json_seed(u64::MAX), (1 << 53) - 1);
        assert_eq!(json_seed(1 << 11), 1);
        assert_eq!(RequestSeed { step: Some(300), seed: 7 }.fields(), ",\"step\":300,\"seed\":7");
        assert_eq!(RequestSeed { step: None, seed: 7 }.fields(), ",\"seed\":7");
        assert_eq!(RequestSeed::held_out(Phase::Validation).fields(), ",\"seed\":1");
        assert_eq!(RequestSeed::held_out(Phase::Test).fields(), ",\"seed\":2");
    }

    #[test]
    fn parses_contexts_row_by_row() {
        let text = r#"{"contexts": [[0.5, -2], [1e3, 0]], "note": "ignored"}"#;
        assert_eq!(parse_contexts(text, 2, 2).unwrap(), vec![0.5, -2.0, 1000.0, 0.0]);
    }

    #[test]
    fn rejects_malformed_contexts_saying_why() {
        let err = |text: &str| parse_contexts(text, 2, 3).unwrap_err();
        assert!(err("nope").contains("not JSON") && err("nope").contains("'nope'"));
        assert!(err("[[1, 2, 3], [4, 5, 6]]").contains("must be an object {\"contexts\""));
        assert!(err(r#"{"context": []}"#).contains("must be an object"));
        assert!(err(r#"{"contexts": [[1, 2, 3]]}"#).contains("got 1 context rows, expected 2"));
        assert!(
            err(r#"{"contexts": [[1, 2, 3], [4, 5, 6, 7, 8]]}"#).contains("context row 1 has 5 numbers, expected 3")
        );
        assert!(err(r#"{"contexts": [[1, 2, 3], 4]}"#).contains("context row 1 is 4, not an array of 3 numbers"));
        assert!(err(r#"{"contexts": [[1, "a", 3], [4, 5, 6]]}"#).contains(r#"context row 0, entry 1 is "a", not"#));
        assert!(err(r#"{"contexts": [[1, 2, 3], [4, 5, null]]}"#).contains("entry 2 is null, not a finite number"));
        assert!(
            err(r#"{"contexts": [[1, 2, 3], [4, 5, 1e39]]}"#)
                .contains("context row 1, entry 2 is 1e39, outside the range of f32 (±3.4e38)")
        );
    }

    #[test]
    fn requests_have_the_documented_fields() {
        let space = KHotSpace::new(100, 2).unwrap();
        let seed = RequestSeed { step: Some(300), seed: 7 };
        assert_eq!(
            rewards_fields("train", Some(seed), false, space, None, &[vec![3, 17], vec![0, 1]]).unwrap(),
            r#""phase":"train","request":"rewards","step":300,"seed":7,"n":100,"k":2,"actions":[[3,17],[0,1]]"#
        );
        assert_eq!(
            rewards_fields("test", Some(RequestSeed::held_out(Phase::Test)), true, space, Some(4), &[]).unwrap(),
            r#""phase":"test","request":"rewards","baseline":"random","seed":2,"n":100,"k":2,"rows":4,"actions":[]"#
        );
        assert_eq!(
            contexts_fields("train", seed, 4),
            r#""phase":"train","request":"contexts","step":300,"seed":7,"rows":4"#
        );
        assert_eq!(
            reset_fields("validation", space, &[u64::MAX, 1 << 11]),
            r#""request":"reset","phase":"validation","n":100,"k":2,"seeds":[9007199254740991,1]"#
        );
        assert_eq!(
            step_fields("train", 3, &[vec![0, 3]]).unwrap(),
            r#""request":"step","phase":"train","t":3,"actions":[[0,3]]"#
        );
    }

    #[test]
    fn parses_episode_resets_and_steps() {
        assert_eq!(parse_reset(r#"{"states": [[1, 2], [3.5, -4]], "x": 0}"#, 2, 2).unwrap(), [1.0, 2.0, 3.5, -4.0]);
        let answer =
            parse_step(r#"{"rewards": [1, -2.5], "terminated": [false, true], "states": [[1], [2]]}"#, 2, 1).unwrap();
        assert_eq!(answer.rewards, [1.0, -2.5]);
        assert_eq!((answer.terminated, answer.truncated), (vec![false, true], vec![false, false]));
        assert_eq!(answer.states, [1.0, 2.0]);
        assert!(answer.info.is_empty());
        let text = r#"{"rewards": [0], "terminated": [false], "truncated": [true], "states": [[0]], "info": {"a": 2}}"#;
        let answer = parse_step(text, 1, 1).unwrap();
        assert_eq!((answer.truncated, answer.info), (vec![true], BTreeMap::from([("a".to_owned(), 2.0)])));
    }

    #[test]
    fn rejects_malformed_episode_answers_saying_why() {
        let reset = |text: &str| parse_reset(text, 2, 2).unwrap_err();
        assert!(reset("nope").contains("not JSON"));
        assert!(reset("[[1, 2], [3, 4]]").contains("must be an object {\"states\""));
        assert!(reset(r#"{"state": []}"#).contains("the answer has no \"states\""));
        assert!(reset(r#"{"states": [[1, 2]]}"#).contains("got 1 state rows, expected 2"));
        assert!(reset(r#"{"states": [[1, 2], [3]]}"#).contains("state row 1 has 1 numbers, expected 2"));
        assert!(reset(r#"{"states": [[1, 2], [3, 1e39]]}"#).contains("state row 1, entry 1 is 1e39, outside"));
        let step = |text: &str| parse_step(text, 2, 1).unwrap_err();
        let good_rest = r#""terminated": [false, false], "states": [[0], [0]]"#;
        assert!(step(&format!(r#"{{"rewards": [1], {good_rest}}}"#)).contains("1 rewards for 2 episodes"));
        assert!(step(&format!(r#"{{"rewards": [1, null], {good_rest}}}"#)).contains("reward 1 is null, not a finite"));
        assert!(step(&format!(r#"{{"rewards": [1, "NaN"], {good_rest}}}"#)).contains("not a finite number"));
        assert!(step(r#"{"rewards": [1, 2], "states": [[0], [0]]}"#).contains("no \"terminated\""));
        let flags = |t: &str| step(&format!(r#"{{"rewards": [1, 2], "terminated": {t}, "states": [[0], [0]]}}"#));
        assert!(flags("[false, 1]").contains("terminated 1 is 1, not true or false"));
        assert!(flags("[false]").contains("1 terminated flags for 2 episodes"));
        assert!(flags("true").contains("\"terminated\" is true, not an array"));
        let truncated = step(&format!(r#"{{"rewards": [1, 2], "truncated": [0, 0], {good_rest}}}"#));
        assert!(truncated.contains("truncated 0 is 0, not true or false"), "{truncated}");
        let info = step(&format!(r#"{{"rewards": [1, 2], "info": {{"a": "b"}}, {good_rest}}}"#));
        assert!(info.contains("info \"a\""), "{info}");
    }
}
