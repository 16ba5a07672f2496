//! Reading a `methodCall`: XML to a small tree (within limits), the tree
//! to a [`Call`].

use quick_xml::events::Event;

use crate::{Call, Value};

/// How much a request may ask of the reader.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of the body.
    pub max_bytes: usize,
    /// Elements inside one another.
    pub max_depth: usize,
    /// Elements in all.
    pub max_elements: usize,
}

impl Default for Limits {
    /// 1 MiB, 64 deep, 100,000 elements: far beyond any call supervisorctl
    /// or a monitoring tool makes (a `multicall` of every method is a few
    /// hundred elements).
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_depth: 64,
            max_elements: 100_000,
        }
    }
}

/// Why a request body is not a method call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// More than [`Limits`] allow.
    #[error("request too large: {0}")]
    TooLarge(String),
    /// Not well-formed XML, or a DTD or unknown entity.
    #[error("not XML-RPC: {0}")]
    Xml(String),
    /// Well-formed, but not a `methodCall` as XML-RPC defines it.
    #[error("not an XML-RPC method call: {0}")]
    Shape(String),
}

/// One element of the tree: its name, its text and its element children.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

/// Reads `body` as a method call, within `limits`.
pub fn parse_call(body: &[u8], limits: Limits) -> Result<Call, ParseError> {
    if body.len() > limits.max_bytes {
        return Err(ParseError::TooLarge(format!(
            "{} bytes, more than {}",
            body.len(),
            limits.max_bytes
        )));
    }
    let text = std::str::from_utf8(body).map_err(|_| ParseError::Xml("not UTF-8".into()))?;
    let root = tree(text, limits)?;
    call(&root)
}

/// The document's root element, read within `limits`.
fn tree(text: &str, limits: Limits) -> Result<Element, ParseError> {
    let xml = |err: &dyn std::fmt::Display| ParseError::Xml(err.to_string());
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut elements = 0usize;
    let mut root = None;
    loop {
        match reader.read_event().map_err(|e| xml(&e))? {
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let _ = start;
                return Err(ParseError::Xml("content after the root element".into()));
            }
            Event::Start(start) => {
                elements += 1;
                within(limits, elements, stack.len())?;
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                stack.push(Element {
                    name,
                    ..Element::default()
                });
            }
            Event::Empty(start) => {
                elements += 1;
                within(limits, elements, stack.len())?;
                let element = Element {
                    name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| ParseError::Xml("unbalanced end".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => {
                let content = t.xml_content().map_err(|e| xml(&e))?;
                push_text(&mut stack, &content)?;
            }
            Event::CData(c) => {
                let content = c.decode().map_err(|e| xml(&e))?;
                push_text(&mut stack, &content)?;
            }
            Event::GeneralRef(r) => {
                let resolved = resolve_reference(&r)?;
                push_text(&mut stack, &resolved)?;
            }
            Event::DocType(_) => {
                return Err(ParseError::Xml(
                    "a document type declaration is not allowed".into(),
                ));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(ParseError::Xml(
            "the document ends inside an element".into(),
        ));
    }
    root.ok_or_else(|| ParseError::Xml("no root element".into()))
}

/// Refuses one element more than `limits` allow: `elements` in all, at
/// `depth`.
fn within(limits: Limits, elements: usize, depth: usize) -> Result<(), ParseError> {
    if elements > limits.max_elements || depth >= limits.max_depth {
        return Err(ParseError::TooLarge(format!(
            "more than {} elements or {} levels",
            limits.max_elements, limits.max_depth
        )));
    }
    Ok(())
}

/// A character reference, or one of XML's five entities; any other
/// entity is an error (no document type declares one).
fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Result<String, ParseError> {
    let xml = |err: &dyn std::fmt::Display| ParseError::Xml(err.to_string());
    if let Some(c) = r.resolve_char_ref().map_err(|e| xml(&e))? {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(|e| xml(&e))?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| ParseError::Xml(format!("unknown entity &{name};")))
}

/// Text goes to the innermost open element; text outside the root (other
/// than white space) is an error.
fn push_text(stack: &mut [Element], text: &str) -> Result<(), ParseError> {
    match stack.last_mut() {
        Some(element) => {
            element.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(ParseError::Xml("text outside the root element".into())),
    }
}

fn shape(message: impl Into<String>) -> ParseError {
    ParseError::Shape(message.into())
}

/// The one child of `element` named `name`, if any.
fn child<'a>(element: &'a Element, name: &str) -> Option<&'a Element> {
    element.children.iter().find(|c| c.name == name)
}

/// `<methodCall><methodName>..</methodName><params>..</params></methodCall>`.
fn call(root: &Element) -> Result<Call, ParseError> {
    if root.name != "methodCall" {
        return Err(shape(format!(
            "the root is <{}>, not <methodCall>",
            root.name
        )));
    }
    let method = child(root, "methodName")
        .map(|m| m.text.trim().to_owned())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| shape("no <methodName>"))?;
    let params = match child(root, "params") {
        None => Vec::new(),
        Some(params) => params
            .children
            .iter()
            .map(|param| {
                if param.name != "param" {
                    return Err(shape(format!("<{}> in <params>", param.name)));
                }
                let value =
                    child(param, "value").ok_or_else(|| shape("a <param> without <value>"))?;
                value_of(value)
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Call { method, params })
}

/// One `<value>`.
fn value_of(value: &Element) -> Result<Value, ParseError> {
    let Some(typed) = value.children.first() else {
        // Text directly in <value> is a string.
        return Ok(Value::Str(value.text.clone()));
    };
    let text = typed.text.trim();
    let bad = |kind: &str| shape(format!("<{kind}>{text}</{kind}> is not one"));
    Ok(match typed.name.as_str() {
        "int" | "i4" | "i8" => Value::Int(text.parse().map_err(|_| bad(&typed.name))?),
        "boolean" => match text {
            "0" => Value::Bool(false),
            "1" => Value::Bool(true),
            _ => return Err(bad("boolean")),
        },
        "string" => Value::Str(typed.text.clone()),
        "double" => Value::Double(text.parse().map_err(|_| bad("double"))?),
        "base64" => Value::Base64(text.to_owned()),
        "dateTime.iso8601" => Value::DateTime(text.to_owned()),
        "nil" => Value::Nil,
        "array" => {
            let data = child(typed, "data").ok_or_else(|| shape("an <array> without <data>"))?;
            Value::Array(
                data.children
                    .iter()
                    .map(value_of)
                    .collect::<Result<_, _>>()?,
            )
        }
        "struct" => Value::Struct(
            typed
                .children
                .iter()
                .map(|member| {
                    let name =
                        child(member, "name").ok_or_else(|| shape("a <member> without <name>"))?;
                    let value = child(member, "value")
                        .ok_or_else(|| shape("a <member> without <value>"))?;
                    Ok((name.text.clone(), value_of(value)?))
                })
                .collect::<Result<_, ParseError>>()?,
        ),
        other => return Err(shape(format!("<{other}> is not an XML-RPC type"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Call, ParseError> {
        parse_call(text.as_bytes(), Limits::default())
    }

    #[test]
    fn calls_as_python_writes_them_are_read() {
        // xmlrpc.client.dumps(("web:1", True), "supervisor.startProcess")
        let call = parse(
            "<?xml version='1.0'?>\n<methodCall>\n<methodName>supervisor.startProcess</methodName>\n\
             <params>\n<param>\n<value><string>web:1</string></value>\n</param>\n\
             <param>\n<value><boolean>1</boolean></value>\n</param>\n</params>\n</methodCall>\n",
        )
        .unwrap();
        assert_eq!(call.method, "supervisor.startProcess");
        assert_eq!(call.params, [Value::from("web:1"), Value::Bool(true)]);
        // No <params> at all, as some clients send for no parameters.
        let call =
            parse("<methodCall><methodName>system.listMethods</methodName></methodCall>").unwrap();
        assert!(call.params.is_empty());
    }

    #[test]
    fn every_type_and_escape_is_read() {
        let call = parse(
            "<methodCall><methodName>system.multicall</methodName><params><param><value><array><data>\
             <value><struct><member><name>methodName</name><value>supervisor.getPID</value></member>\
             <member><name>params</name><value><array><data/></array></value></member></struct></value>\
             <value><i4>-3</i4></value><value><double>2.5</double></value>\
             <value>a &amp; b &lt;c&gt; &#233;</value><value><nil/></value>\
             <value><string><![CDATA[x<y]]></string></value>\
             </data></array></value></param></params></methodCall>",
        )
        .unwrap();
        let Value::Array(items) = &call.params[0] else {
            panic!("{call:?}")
        };
        assert_eq!(
            items[0],
            Value::record([
                ("methodName", Value::from("supervisor.getPID")),
                ("params", Value::Array(Vec::new())),
            ])
        );
        assert_eq!(items[1], Value::Int(-3));
        assert_eq!(items[2], Value::Double(2.5));
        assert_eq!(items[3], Value::from("a & b <c> é"));
        assert_eq!(items[4], Value::Nil);
        assert_eq!(items[5], Value::from("x<y"));
    }

    #[test]
    fn bombs_and_garbage_are_errors_not_memory() {
        let billion_laughs = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>\
             <!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>\
             <methodCall><methodName>&lol2;</methodName></methodCall>";
        assert!(matches!(parse(billion_laughs), Err(ParseError::Xml(_))));
        let undeclared = "<methodCall><methodName>&lol;</methodName></methodCall>";
        assert!(matches!(parse(undeclared), Err(ParseError::Xml(_))));
        let deep = format!(
            "<methodCall><methodName>m</methodName><params><param><value>{}1{}</value></param></params></methodCall>",
            "<array><data><value>".repeat(100),
            "</value></data></array>".repeat(100)
        );
        assert!(matches!(parse(&deep), Err(ParseError::TooLarge(_))));
        let wide = format!(
            "<methodCall><methodName>m</methodName><params>{}</params></methodCall>",
            "<param><value><int>1</int></value></param>".repeat(40_000)
        );
        assert!(matches!(parse(&wide), Err(ParseError::TooLarge(_))));
        let huge = vec![b' '; (1 << 20) + 1];
        assert!(matches!(
            parse_call(&huge, Limits::default()),
            Err(ParseError::TooLarge(_))
        ));
        for garbage in [
            "",
            "<",
            "not xml",
            "<methodCall>",
            "<a></b>",
            "<methodCall></methodCall>",
            "<methodCall><methodName>m</methodName><params><param><value><int>x</int></value></param></params></methodCall>",
            "<methodCall><methodName>m</methodName></methodCall><again/>",
            "\u{0}\u{1}",
        ] {
            assert!(parse(garbage).is_err(), "{garbage:?} was accepted");
        }
    }
}
