//! Model prices, per million tokens, in US dollars. Costs are stored as integer micro-dollars:
//! a price of $P per million tokens is exactly P micro-dollars per token.

use crate::agents::Usage;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_write: f64,
    pub cache_read: f64,
}

const fn price(input: f64, output: f64) -> Price {
    // Anthropic's cache writes (5-minute) cost 1.25x input; cache reads 0.1x.
    Price {
        input,
        output,
        cache_write: input * 1.25,
        cache_read: input / 10.0,
    }
}

/// The price of a model id as the transcript reports it (`claude-opus-4-1-20250805`, ...).
pub fn price_of(model: &str) -> Option<Price> {
    let m = model.to_ascii_lowercase();
    if m.contains("opus-4-1")
        || m.contains("opus-4-0")
        || m.contains("opus-4-2025")
        || m.contains("3-opus")
    {
        Some(price(15.0, 75.0))
    } else if m.contains("opus") {
        Some(price(5.0, 25.0))
    } else if m.contains("sonnet") {
        Some(price(3.0, 15.0))
    } else if m.contains("3-5-haiku") || m.contains("haiku-3-5") {
        Some(price(0.8, 4.0))
    } else if m.contains("3-haiku") {
        Some(price(0.25, 1.25))
    } else if m.contains("haiku") {
        Some(price(1.0, 5.0))
    } else {
        None
    }
}

/// Cost of one call in micro-dollars; 0 for a model with no known price.
pub fn cost_micros(model: &str, usage: &Usage) -> i64 {
    let Some(p) = price_of(model) else {
        return 0;
    };
    let micros = usage.input as f64 * p.input
        + usage.output as f64 * p.output
        + usage.cache_creation as f64 * p.cache_write
        + usage.cache_read as f64 * p.cache_read;
    micros.round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_tokens_times_price() {
        let usage = Usage {
            input: 1_000_000,
            output: 1_000,
            cache_creation: 0,
            cache_read: 10_000,
        };
        // sonnet: $3 input, $15 output, $0.30 cache read per million.
        assert_eq!(
            cost_micros("claude-sonnet-4-5", &usage),
            3_000_000 + 15_000 + 3_000
        );
        assert_eq!(
            cost_micros("claude-opus-4-1-20250805", &usage),
            15_000_000 + 75_000 + 15_000
        );
        assert_eq!(
            cost_micros("claude-haiku-4-5", &usage),
            1_000_000 + 5_000 + 1_000
        );
        assert_eq!(cost_micros("mystery", &usage), 0);
    }
}
