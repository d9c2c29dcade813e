//! Reads the Prometheus / OpenMetrics text format back into samples: what `kuryr doctor`
//! shows from a running daemon and what the tests compare against what they did.

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses every sample of `text`, skipping comments; an error names the line that is not a
/// sample.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).map_err(|e| format!("line {}: {e}: {line:?}", n + 1))?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "no value".to_string())?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        // A key up to '=', then a quoted value with \\, \" and \n escapes.
        while let Some(&(start, c)) = chars.peek() {
            if c == '}' {
                end = Some(start + 1);
                break;
            }
            if c == ',' {
                chars.next();
                continue;
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key} has no quoted value"));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => break,
                    },
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("label {key}'s value is not closed"));
            }
            labels.push((key.trim().to_string(), value));
        }
        let end = end.ok_or_else(|| "labels are not closed".to_string())?;
        rest = &body[end..];
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| "no value".to_string())?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .map_err(|_| format!("value {v:?} is not a number"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// The sum of the samples named `name` whose labels include all of `labels`.
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        // A fold from +0.0: `sum()` of no floats is -0.0, which prints as "-0".
        .fold(0.0, |a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_escapes_and_special_values() {
        let s = parse(
            "# HELP x y\nx_total{a=\"1\",b=\"q\\\"u\\\\o\\nte\"} 3\nup 1\ny_bucket{le=\"+Inf\"} 7 1700000000\nz +Inf\n",
        )
        .expect("parses");
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].label("b"), Some("q\"u\\o\nte"));
        assert_eq!(sum(&s, "x_total", &[("a", "1")]), 3.0);
        assert_eq!(sum(&s, "x_total", &[("a", "2")]), 0.0);
        assert_eq!(sum(&s, "up", &[]), 1.0);
        assert_eq!(sum(&s, "y_bucket", &[("le", "+Inf")]), 7.0);
        assert!(s[3].value.is_infinite());
    }

    #[test]
    fn refuses_what_is_not_a_sample() {
        for bad in ["x{a=1} 2", "x{a=\"1\" 2", "x", "x{a=\"1\"} nope"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
