//! Writing a `methodResponse` or a fault, laid out as Python's xmlrpclib
//! lays them out (supervisord's own responses come from it).

use std::fmt::Write as _;

use crate::{FaultCode, Value};

/// The response carrying `value`.
pub fn response(value: &Value) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n");
    write_value(&mut out, value);
    out.push_str("\n</param>\n</params>\n</methodResponse>\n");
    out
}

/// The fault response with `code` and supervisord's text for it.
pub fn fault(code: FaultCode, extra: Option<&str>) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n");
    write_value(
        &mut out,
        &Value::record([
            ("faultCode", Value::Int(code as i64)),
            ("faultString", Value::Str(code.text(extra))),
        ]),
    );
    out.push_str("\n</fault>\n</methodResponse>\n");
    out
}

fn write_value(out: &mut String, value: &Value) {
    out.push_str("<value>");
    match value {
        Value::Int(i) => {
            let _ = write!(out, "<int>{i}</int>");
        }
        Value::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Value::Str(s) => {
            let _ = write!(
                out,
                "<string>{}</string>",
                quick_xml::escape::partial_escape(xml_chars(s))
            );
        }
        Value::Double(d) => {
            let _ = write!(out, "<double>{}</double>", python_double(*d));
        }
        Value::Base64(b) => {
            let _ = write!(out, "<base64>\n{b}\n</base64>");
        }
        Value::DateTime(d) => {
            let _ = write!(out, "<dateTime.iso8601>{d}</dateTime.iso8601>");
        }
        Value::Nil => out.push_str("<nil/>"),
        Value::Array(items) => {
            out.push_str("<array><data>\n");
            for item in items {
                write_value(out, item);
                out.push('\n');
            }
            out.push_str("</data></array>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>\n");
            for (name, member) in members {
                let _ = write!(
                    out,
                    "<member>\n<name>{}</name>\n",
                    quick_xml::escape::partial_escape(name)
                );
                write_value(out, member);
                out.push_str("\n</member>\n");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

/// `s` with the characters XML 1.0 cannot carry (control characters but
/// tab, newline and carriage return: a log line's colour codes) as U+FFFD,
/// so that the client's parser reads the response at all.
fn xml_chars(s: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |c: char| c >= ' ' || matches!(c, '\t' | '\n' | '\r');
    if s.chars().all(allowed) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| if allowed(c) { c } else { '\u{fffd}' })
            .collect(),
    )
}

/// A double as Python's `repr` writes it (`1.0`, not `1`).
fn python_double(d: f64) -> String {
    if d.is_finite() && d.fract() == 0.0 && d.abs() < 1e16 {
        format!("{d:.1}")
    } else {
        format!("{d}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, parse_call};

    #[test]
    fn responses_are_laid_out_as_xmlrpclib_lays_them_out() {
        // xmlrpc.client.dumps(({"name": "web", "pid": 42},), methodresponse=True)
        let text = response(&Value::record([
            ("name", Value::from("web")),
            ("pid", Value::Int(42)),
        ]));
        assert_eq!(
            text,
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\n\
             <member>\n<name>name</name>\n<value><string>web</string></value>\n</member>\n\
             <member>\n<name>pid</name>\n<value><int>42</int></value>\n</member>\n\
             </struct></value>\n</param>\n</params>\n</methodResponse>\n"
        );
        assert!(response(&Value::from("a<b&c")).contains("<string>a&lt;b&amp;c</string>"));
        assert!(response(&Value::Double(3.0)).contains("<double>3.0</double>"));
        // A log's colour codes would make the response unreadable.
        assert!(
            response(&Value::from("\u{1b}[31mred")).contains("<string>\u{fffd}[31mred</string>")
        );
    }

    #[test]
    fn faults_carry_supervisords_code_and_text() {
        let text = fault(FaultCode::BadName, Some("nope"));
        assert!(
            text.contains("<name>faultCode</name>\n<value><int>10</int></value>"),
            "{text}"
        );
        assert!(
            text.contains("<value><string>BAD_NAME: nope</string></value>"),
            "{text}"
        );
        assert_eq!(FaultCode::UnknownMethod.text(None), "UNKNOWN_METHOD");
    }

    #[test]
    fn what_is_written_reads_back() {
        let value = Value::Array(vec![
            Value::Int(1),
            Value::Bool(false),
            Value::from("x & y"),
            Value::record([("k", Value::Array(Vec::new()))]),
        ]);
        let call = format!(
            "<methodCall><methodName>m</methodName><params><param>{}</param></params></methodCall>",
            response(&value)
                .split("<param>\n")
                .nth(1)
                .and_then(|rest| rest.split("\n</param>").next())
                .unwrap()
        );
        let parsed = parse_call(call.as_bytes(), Limits::default()).unwrap();
        assert_eq!(parsed.params, [value]);
    }
}
