//! The `/metrics` body (PROTOCOL.md section 9) in the Prometheus text
//! exposition format, version 0.0.4.
//!
//! The server keeps a plain [`Metrics`] and counts into it; this module only
//! writes it out. Every metric has `# HELP` and `# TYPE` lines, and every
//! label value is a fixed word of ours, so nothing needs escaping. A reason
//! that never happened is written as 0, so a scraper sees every series from
//! the start.

use std::fmt::{Display, Write as _};
use std::time::Duration;

/// The `Content-Type` of the body.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Open chat connections by transport.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Line-based TCP connections.
    pub tcp: u64,
    /// WebSocket connections (after the upgrade).
    pub ws: u64,
}

/// Connections the server dropped, by reason (the series of
/// `chat_dropped_total`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// `too_slow`: more than `--max-pending` left unread after a flush.
    pub too_slow: u64,
    /// `idle`: silent past `--idle-timeout`.
    pub idle: u64,
    /// `login_timeout`: no name (or no complete HTTP head) within
    /// `--login-timeout`.
    pub login_timeout: u64,
    /// `protocol`: a WebSocket client broke RFC 6455 (close code 1002 or
    /// 1007).
    pub protocol: u64,
}

/// Things the server refused, by reason (the series of
/// `chat_refused_total`): connections at accept, and lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// `full`: a connection beyond `--max-clients`.
    pub full: u64,
    /// `per_ip`: a connection beyond `--max-per-ip`.
    pub per_ip: u64,
    /// `rate`: a line beyond `--rate`.
    pub rate: u64,
    /// `too_long`: a line beyond `--max-line`.
    pub too_long: u64,
    /// `binary`: a binary WebSocket message.
    pub binary: u64,
}

/// The counters and gauges the server keeps for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Users in the room (with a name), a gauge.
    pub users: u64,
    /// Open chat connections, logged in or not, a gauge.
    pub connections: Connections,
    /// Lines accepted from users (chat lines, `/me`, `/msg`).
    pub lines: u64,
    /// Lines written into receivers' output (one broadcast to n users
    /// counts n).
    pub deliveries: u64,
    /// Connections dropped, by reason.
    pub dropped: Dropped,
    /// Connections and lines refused, by reason.
    pub refused: Refused,
    /// Failed writes to the history store.
    pub history_write_errors: u64,
    /// Time since the server started.
    pub uptime: Duration,
}

impl Metrics {
    /// The body: every metric, in the text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let m = self;
        family(
            &mut out,
            "chat_users",
            "gauge",
            "Users in the room.",
            "",
            &[("", m.users)],
        );
        family(
            &mut out,
            "chat_connections",
            "gauge",
            "Open chat connections, logged in or not, by transport.",
            "transport",
            &[("tcp", m.connections.tcp), ("ws", m.connections.ws)],
        );
        family(
            &mut out,
            "chat_lines_total",
            "counter",
            "Lines accepted from users (chat, /me, /msg).",
            "",
            &[("", m.lines)],
        );
        family(
            &mut out,
            "chat_deliveries_total",
            "counter",
            "Lines queued to receivers (a broadcast to n users counts n).",
            "",
            &[("", m.deliveries)],
        );
        let d = &m.dropped;
        family(
            &mut out,
            "chat_dropped_total",
            "counter",
            "Connections the server dropped, by reason.",
            "reason",
            &[
                ("too_slow", d.too_slow),
                ("idle", d.idle),
                ("login_timeout", d.login_timeout),
                ("protocol", d.protocol),
            ],
        );
        let r = &m.refused;
        family(
            &mut out,
            "chat_refused_total",
            "counter",
            "Connections and lines the server refused, by reason.",
            "reason",
            &[
                ("full", r.full),
                ("per_ip", r.per_ip),
                ("rate", r.rate),
                ("too_long", r.too_long),
                ("binary", r.binary),
            ],
        );
        family(
            &mut out,
            "chat_history_write_errors_total",
            "counter",
            "Failed writes to the history store.",
            "",
            &[("", m.history_write_errors)],
        );
        family(
            &mut out,
            "chat_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            "",
            &[("", m.uptime.as_secs_f64())],
        );
        out
    }

    /// The complete HTTP response for `GET /metrics`.
    pub fn response(&self) -> Vec<u8> {
        super::http::ok(CONTENT_TYPE, self.render().as_bytes())
    }
}

/// Writes one metric: its HELP and TYPE lines, then one sample per entry of
/// `samples`, labelled `label="value"` unless `label` is empty.
fn family<T: Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    samples: &[(&str, T)],
) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (value_label, value) in samples {
        if label.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{label}=\"{value_label}\"}} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openmetrics_parser::prometheus::parse_prometheus;
    use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};

    type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

    fn sample() -> Metrics {
        Metrics {
            users: 3,
            connections: Connections { tcp: 2, ws: 5 },
            lines: 1234,
            deliveries: 98765,
            dropped: Dropped {
                too_slow: 1,
                idle: 2,
                login_timeout: 3,
                protocol: 4,
            },
            refused: Refused {
                full: 5,
                per_ip: 6,
                rate: 7,
                too_long: 8,
                binary: 9,
            },
            history_write_errors: 10,
            uptime: Duration::from_millis(90_500),
        }
    }

    /// The family `name`: checks its type and that it has HELP text, and
    /// returns its samples as (label value or "", value).
    fn family_of(e: &Exposition, name: &str, kind: PrometheusType) -> Vec<(String, f64)> {
        let f = e.families.get(name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(f.family_type, kind, "{name}");
        assert!(!f.help.is_empty(), "{name} has no HELP");
        let names = f.get_label_names().to_vec();
        f.iter_samples()
            .map(|s| {
                let labels = s.get_labelset().expect("labels");
                let label = match names.as_slice() {
                    [] => String::new(),
                    [one] => labels.get_label_value(one).expect("value").to_string(),
                    more => panic!("{name}: labels {more:?}"),
                };
                let value = match &s.value {
                    PrometheusValue::Gauge(n) => n.as_f64(),
                    PrometheusValue::Counter(c) => c.value.as_f64(),
                    other => panic!("{name}: {other:?}"),
                };
                (label, value)
            })
            .collect()
    }

    fn pairs(list: &[(&str, f64)]) -> Vec<(String, f64)> {
        list.iter().map(|&(l, v)| (l.to_string(), v)).collect()
    }

    #[test]
    fn every_metric_parses_with_its_type_labels_and_value() {
        let body = sample().render();
        let e = parse_prometheus(&body).expect("valid text format");
        use PrometheusType::{Counter, Gauge};
        assert_eq!(family_of(&e, "chat_users", Gauge), pairs(&[("", 3.0)]));
        let f = e.families.get("chat_connections").expect("connections");
        assert_eq!(f.get_label_names(), ["transport"]);
        assert_eq!(
            family_of(&e, "chat_connections", Gauge),
            pairs(&[("tcp", 2.0), ("ws", 5.0)])
        );
        assert_eq!(
            family_of(&e, "chat_lines_total", Counter),
            pairs(&[("", 1234.0)])
        );
        assert_eq!(
            family_of(&e, "chat_deliveries_total", Counter),
            pairs(&[("", 98765.0)])
        );
        assert_eq!(
            e.families["chat_dropped_total"].get_label_names(),
            ["reason"]
        );
        assert_eq!(
            family_of(&e, "chat_dropped_total", Counter),
            pairs(&[
                ("too_slow", 1.0),
                ("idle", 2.0),
                ("login_timeout", 3.0),
                ("protocol", 4.0)
            ])
        );
        assert_eq!(
            e.families["chat_refused_total"].get_label_names(),
            ["reason"]
        );
        assert_eq!(
            family_of(&e, "chat_refused_total", Counter),
            pairs(&[
                ("full", 5.0),
                ("per_ip", 6.0),
                ("rate", 7.0),
                ("too_long", 8.0),
                ("binary", 9.0)
            ])
        );
        assert_eq!(
            family_of(&e, "chat_history_write_errors_total", Counter),
            pairs(&[("", 10.0)])
        );
        assert_eq!(
            family_of(&e, "chat_uptime_seconds", Gauge),
            pairs(&[("", 90.5)])
        );
        assert_eq!(e.families.len(), 8, "no other families");
    }

    #[test]
    fn zero_metrics_still_list_every_series() {
        let body = Metrics::default().render();
        let e = parse_prometheus(&body).expect("valid text format");
        let dropped = family_of(&e, "chat_dropped_total", PrometheusType::Counter);
        assert_eq!(dropped.len(), 4);
        assert!(dropped.iter().all(|(_, v)| *v == 0.0));
        assert_eq!(
            family_of(&e, "chat_refused_total", PrometheusType::Counter).len(),
            5
        );
    }

    #[test]
    fn response_is_http_with_the_text_format_type() {
        let bytes = sample().response();
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(end) = resp.parse(&bytes).expect("valid") else {
            panic!("incomplete");
        };
        assert_eq!(resp.code, Some(200));
        let ct = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-type"))
            .expect("content type");
        assert_eq!(ct.value, CONTENT_TYPE.as_bytes());
        let body = std::str::from_utf8(&bytes[end..]).expect("utf-8");
        assert_eq!(body, sample().render());
    }
}
