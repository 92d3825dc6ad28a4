//! Logs as Thanos writes them (`--log.level`, `--log.format=logfmt|json`): one line per event,
//! `ts`, `level`, `caller`, `msg`, then the event's fields, so existing log pipelines keep parsing.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `--log.level`: the lowest level that is logged (`debug`, `info`, `warn`, `error`).
// Variant docs would become per-value help text in --help; the names say it all.
#[expect(missing_docs, reason = "the variant names are the flag values")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// `--log.format`: `logfmt` (`key=value` pairs) or `json` (one object per line).
#[expect(missing_docs, reason = "the variant names are the flag values")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

impl LogLevel {
    fn filter(self) -> tracing::level_filters::LevelFilter {
        match self {
            Self::Debug => tracing::level_filters::LevelFilter::DEBUG,
            Self::Info => tracing::level_filters::LevelFilter::INFO,
            Self::Warn => tracing::level_filters::LevelFilter::WARN,
            Self::Error => tracing::level_filters::LevelFilter::ERROR,
        }
    }
}

/// Installs the global log subscriber, writing to stderr. Later calls are ignored, so tests
/// that start several components in one process do not fail.
pub fn init(level: LogLevel, format: LogFormat) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(level.filter())
        .with_writer(std::io::stderr)
        .event_format(LineFormat { format })
        .try_init();
}

struct LineFormat {
    format: LogFormat,
}

/// The fields of one event, in order, with `message` taken out as `msg`.
#[derive(Default)]
struct Fields {
    msg: String,
    pairs: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.pairs.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.msg = text;
        } else {
            self.pairs.push((field.name(), text));
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

/// Writes a logfmt value, quoting it when it holds spaces, quotes, `=` or nothing.
fn write_logfmt_value(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control());
    if !needs_quotes {
        return out.write_str(value);
    }
    out.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

fn timestamp() -> String {
    // RFC 3339 in UTC with milliseconds, like go-kit's DefaultTimestampUTC.
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let caller = match (meta.file(), meta.line()) {
            (Some(file), Some(line)) => {
                let file = file.rsplit('/').next().unwrap_or(file);
                format!("{file}:{line}")
            }
            _ => meta.target().to_string(),
        };
        let level = level_name(meta.level());
        match self.format {
            LogFormat::Logfmt => {
                write!(writer, "ts={} caller=", timestamp())?;
                write_logfmt_value(&mut writer, &caller)?;
                write!(writer, " level={level} msg=")?;
                write_logfmt_value(&mut writer, &fields.msg)?;
                for (key, value) in &fields.pairs {
                    write!(writer, " {key}=")?;
                    write_logfmt_value(&mut writer, value)?;
                }
                writeln!(writer)
            }
            LogFormat::Json => {
                let mut obj = serde_json::Map::new();
                obj.insert("ts".into(), timestamp().into());
                obj.insert("caller".into(), caller.into());
                obj.insert("level".into(), level.into());
                obj.insert("msg".into(), fields.msg.into());
                for (key, value) in fields.pairs {
                    obj.insert(key.into(), value.into());
                }
                writeln!(writer, "{}", serde_json::Value::Object(obj))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_only_when_needed() {
        let mut s = String::new();
        for v in ["plain", "two words", "", "a=b", "say \"hi\"\n"] {
            write_logfmt_value(&mut s, v).expect("write");
            s.push('|');
        }
        assert_eq!(s, r#"plain|"two words"|""|"a=b"|"say \"hi\"\n"|"#);
    }
}
