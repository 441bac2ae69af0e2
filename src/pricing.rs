//! Model prices as data: per million tokens, in US dollars, each valid from a date. The
//! defaults ship in `src/prices.toml`; the config file's `[[prices]]` entries override them (the
//! same model and date) or add to them. Costs are stored as integer micro-dollars: a price of
//! $P per million tokens is exactly P micro-dollars per token. A model with no price costs
//! nothing known: its calls are recorded with their tokens and no cost, and reports say
//! "unpriced", never $0.

use chrono::NaiveDate;
use serde::Deserialize;

use crate::agents::Usage;

const DEFAULTS: &str = include_str!("prices.toml");

/// One model's (or family's) price from a date on.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// A model id, or the prefix of a family of ids (`claude-sonnet-4`).
    pub model: String,
    /// The first day this price applies (YYYY-MM-DD).
    pub valid_from: NaiveDate,
    pub input: f64,
    pub output: f64,
    pub cache_write: f64,
    pub cache_read: f64,
}

#[derive(Debug, Deserialize)]
struct PriceFile {
    #[serde(default)]
    prices: Vec<Price>,
}

#[derive(Debug, Clone)]
pub struct PriceTable {
    prices: Vec<Price>,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::defaults()
    }
}

impl PriceTable {
    /// The prices troupe ships with.
    pub fn defaults() -> PriceTable {
        let file: PriceFile = toml::from_str(DEFAULTS).expect("src/prices.toml parses");
        PriceTable {
            prices: file.prices,
        }
    }

    /// The defaults with `overrides` laid over them: an entry for the same model and date
    /// replaces the default one, any other is added.
    pub fn with(mut self, overrides: Vec<Price>) -> Result<PriceTable, String> {
        for p in overrides {
            let costs = [p.input, p.output, p.cache_write, p.cache_read];
            if p.model.trim().is_empty() || costs.iter().any(|c| !c.is_finite() || *c < 0.0) {
                return Err(format!(
                    "price for {:?}: the model must be named and every price a number of \
                     dollars per million tokens, 0 or more",
                    p.model
                ));
            }
            self.prices
                .retain(|d| !(d.model == p.model && d.valid_from == p.valid_from));
            self.prices.push(p);
        }
        Ok(self)
    }

    pub fn entries(&self) -> &[Price] {
        &self.prices
    }

    /// The price of `model` on `day`: the entry naming the model, or the longest family
    /// prefix of it (followed by `-` or `@`, so `gpt-5` prices `gpt-5-2025-08-07` but not
    /// `gpt-50`), latest `valid_from` not after `day`.
    pub fn price_of(&self, model: &str, day: NaiveDate) -> Option<&Price> {
        let m = model.trim().to_ascii_lowercase();
        let fits = |p: &Price| {
            let family = p.model.to_ascii_lowercase();
            m == family
                || m.strip_prefix(&family)
                    .is_some_and(|rest| rest.starts_with(['-', '@']))
        };
        self.prices
            .iter()
            .filter(|p| p.valid_from <= day && fits(p))
            .max_by(|a, b| {
                a.model
                    .len()
                    .cmp(&b.model.len())
                    .then(a.valid_from.cmp(&b.valid_from))
            })
    }

    /// Cost of one call in micro-dollars, or None for a model with no price.
    pub fn cost_micros(&self, model: &str, day: NaiveDate, usage: &Usage) -> Option<i64> {
        let p = self.price_of(model, day)?;
        let micros = usage.input as f64 * p.input
            + usage.output as f64 * p.output
            + usage.cache_creation as f64 * p.cache_write
            + usage.cache_read as f64 * p.cache_read;
        Some(micros.round() as i64)
    }
}

/// What a model id given at spawn costs as far as troupe knows: None when it is priced or is
/// an alias the CLI resolves (`opus`, `sonnet`), else the words that say it is unpriced.
pub fn unpriced_warning(table: &PriceTable, model: &str, day: NaiveDate) -> Option<String> {
    let m = model.trim();
    // Aliases and empty names are resolved by the CLI; their calls are priced by the id the
    // CLI reports.
    if !m.contains('-') || table.price_of(m, day).is_some() {
        return None;
    }
    Some(format!(
        "model {m} has no price in troupe's table: its tokens are counted and its cost shows as \
         \"unpriced\"; add a [[prices]] entry for it to troupe's config file"
    ))
}

/// Says once per model and process, in the log, that a model's calls are unpriced.
pub fn note_unpriced(model: &str) {
    static SEEN: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::LazyLock::new(Default::default);
    let first = SEEN
        .lock()
        .expect("unpriced models poisoned")
        .insert(model.to_string());
    if first {
        tracing::warn!(
            model,
            "model {model} has no price: its calls are recorded with their tokens and shown as \
             unpriced; add a [[prices]] entry for it to troupe's config file"
        );
    }
}

/// Reads `[[prices]]` entries from a config file's text.
pub fn parse(text: &str) -> Result<Vec<Price>, String> {
    toml::from_str::<PriceFile>(text)
        .map(|f| f.prices)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_spawn_of_an_unpriced_model_id_is_warned_of_and_aliases_are_not() {
        let t = PriceTable::defaults();
        let today = day("2026-12-06");
        assert_eq!(unpriced_warning(&t, "opus", today), None);
        assert_eq!(unpriced_warning(&t, "claude-opus-5-5", today), None);
        assert_eq!(
            unpriced_warning(&t, "claude-haiku-5-5-20261101", today),
            None
        );
        let w = unpriced_warning(&t, "claude-fancy-9", today).unwrap();
        assert!(w.starts_with("model claude-fancy-9 has no price"), "{w}");
        assert!(w.contains("[[prices]]"), "{w}");
    }

    #[test]
    fn cost_is_tokens_times_price() {
        let t = PriceTable::defaults();
        let today = day("2026-12-01");
        let usage = Usage {
            input: 1_000_000,
            output: 1_000,
            cache_creation: 100_000,
            cache_read: 10_000,
        };
        // sonnet: $3 input, $15 output, $3.75 cache write, $0.30 cache read per million.
        assert_eq!(
            t.cost_micros("claude-sonnet-4-5-20250929", today, &usage),
            Some(3_000_000 + 15_000 + 375_000 + 3_000)
        );
        assert_eq!(
            t.cost_micros("claude-opus-4-1-20250805", today, &usage),
            Some(15_000_000 + 75_000 + 1_875_000 + 15_000)
        );
        assert_eq!(
            t.cost_micros("claude-opus-4-8", today, &usage),
            Some(5_000_000 + 25_000 + 625_000 + 5_000)
        );
        assert_eq!(
            t.cost_micros("claude-haiku-4-5", today, &usage),
            Some(1_000_000 + 5_000 + 125_000 + 1_000)
        );
        assert_eq!(
            t.cost_micros("gpt-5-mini", today, &usage),
            Some(250_000 + 2_000 + 25_000 + 250)
        );
        assert_eq!(
            t.cost_micros("claude-sonnet-5", today, &usage),
            Some(3_000_000 + 15_000 + 375_000 + 3_000),
            "what the pinned Claude Code's `sonnet` is"
        );
        assert_eq!(t.cost_micros("mystery", today, &usage), None);
        assert_eq!(t.cost_micros("gpt-50", today, &usage), None, "not a gpt-5");
    }

    /// The models the tested Claude Code versions run for `opus`, `sonnet` and `haiku`, and
    /// the rest of 2.1.328's catalog: each has its own price, not a shorter prefix's.
    #[test]
    fn every_model_the_tested_clis_name_is_priced() {
        let t = PriceTable::defaults();
        let today = day("2026-12-06");
        for (model, input, cache_read) in [
            ("claude-opus-5-5", 4.0, 0.2),
            ("claude-sonnet-5-5", 2.0, 0.1),
            ("claude-haiku-5-5", 0.1, 0.01),
            ("claude-opus-5", 5.0, 0.5),
            ("claude-opus-4-8", 5.0, 0.5),
            ("claude-haiku-4-5-20251001", 1.0, 0.1),
            ("claude-sonnet-4-6", 3.0, 0.3),
            ("claude-fable-5-2", 8.0, 0.2),
            ("claude-mythos-5-1", 10.0, 0.25),
        ] {
            let p = t
                .price_of(model, today)
                .unwrap_or_else(|| panic!("{model} is not priced"));
            assert_eq!((p.input, p.cache_read), (input, cache_read), "{model}");
        }
    }

    #[test]
    fn a_price_applies_from_its_date() {
        let t = PriceTable::defaults();
        assert!(
            t.price_of("claude-opus-4-5", day("2025-11-23"))
                .is_some_and(|p| p.input == 15.0),
            "before its own price, the family's"
        );
        assert_eq!(
            t.price_of("claude-opus-4-5", day("2025-11-24"))
                .unwrap()
                .input,
            5.0
        );
        assert!(t.price_of("gpt-5", day("2025-08-06")).is_none());
    }

    #[test]
    fn the_config_file_overrides_and_adds() {
        let extra = parse(
            "[[prices]]\nmodel = \"gpt-5\"\nvalid_from = \"2025-08-07\"\ninput = 2.0\n\
             output = 20.0\ncache_write = 2.0\ncache_read = 0.2\n\n\
             [[prices]]\nmodel = \"local-llama\"\nvalid_from = \"2020-01-01\"\ninput = 0.0\n\
             output = 0.0\ncache_write = 0.0\ncache_read = 0.0\n",
        )
        .unwrap();
        let t = PriceTable::defaults().with(extra).unwrap();
        let today = day("2026-12-01");
        assert_eq!(t.price_of("gpt-5", today).unwrap().input, 2.0);
        let free = Usage {
            input: 10,
            output: 10,
            cache_creation: 0,
            cache_read: 0,
        };
        assert_eq!(
            t.cost_micros("local-llama", today, &free),
            Some(0),
            "priced at 0"
        );
        assert!(
            parse("[[prices]]\nmodel = \"x\"\n").is_err(),
            "fields missing"
        );
        let negative = parse(
            "[[prices]]\nmodel = \"x\"\nvalid_from = \"2020-01-01\"\ninput = -1.0\noutput = 0.0\n\
             cache_write = 0.0\ncache_read = 0.0\n",
        )
        .unwrap();
        assert!(PriceTable::defaults().with(negative).is_err());
    }
}
