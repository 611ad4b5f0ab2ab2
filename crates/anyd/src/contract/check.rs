//! Checks a call's arguments against a document before it is sent: a
//! validator for the part of JSON Schema that `schemars` writes (types,
//! `properties` and `required`, `additionalProperties`, `items` and
//! `prefixItems`, `enum` and `const`, `anyOf`, `oneOf` and `allOf`,
//! nullable types, numeric bounds and integer formats, string lengths,
//! `$ref` into the document). What it does not know, it lets through:
//! the daemon checks every argument anyway, and a check here only says
//! earlier, and better, what it would refuse.

use std::fmt;

use schemars::Schema;
use serde_json::{Map, Value};

use super::Document;

/// An argument that the method's schema refuses, or a call of the wrong
/// shape (a parameter missing, one too many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentError {
    /// The method.
    pub method: String,
    /// The parameter, when the error is about one.
    pub param: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{}(): parameter '{p}': {}", self.method, self.message),
            None => write!(f, "{}(): {}", self.method, self.message),
        }
    }
}

impl std::error::Error for ArgumentError {}

impl Document {
    /// Checks the arguments of a call of `method` against its parameters:
    /// their number and names, which are required, and each value against
    /// its schema. A method the document does not have passes (the daemon
    /// answers for it).
    ///
    /// # Errors
    ///
    /// The first problem found, naming the parameter.
    pub fn check_call(
        &self,
        method: &str,
        args: &[Value],
        kwargs: &[(String, Value)],
    ) -> Result<(), ArgumentError> {
        let Some(m) = self.method(method) else {
            return Ok(());
        };
        let fail = |param: Option<&str>, message: String| ArgumentError {
            method: method.to_owned(),
            param: param.map(str::to_owned),
            message,
        };
        let positional: Vec<_> = m.params.iter().filter(|p| !p.keyword_only).collect();
        if args.len() > positional.len() {
            let n = positional.len();
            let s = if n == 1 { "" } else { "s" };
            return Err(fail(
                None,
                format!(
                    "takes {n} positional argument{s} but {} were given",
                    args.len()
                ),
            ));
        }
        for (key, _) in kwargs {
            let Some(i) = m.params.iter().position(|p| &p.name == key) else {
                return Err(fail(None, format!("has no parameter '{key}'")));
            };
            if i < args.len() && !m.params[i].keyword_only {
                return Err(fail(Some(key), "given by position and by name".into()));
            }
        }
        for (i, p) in m.params.iter().enumerate() {
            let given = if p.keyword_only { None } else { args.get(i) }
                .or_else(|| kwargs.iter().find(|(k, _)| k == &p.name).map(|(_, v)| v));
            match given {
                None if p.required => return Err(fail(Some(&p.name), "missing".into())),
                None => {}
                Some(value) => {
                    if let Err(e) = (Checker { doc: self }).check(&p.schema, value, "", 0) {
                        return Err(fail(Some(&p.name), e));
                    }
                }
            }
        }
        Ok(())
    }
}

/// How deep schemas may nest `$ref`s and combinators while checking one
/// value: recursive types stop here rather than overflow the stack.
const MAX_DEPTH: usize = 64;

struct Checker<'a> {
    doc: &'a Document,
}

/// A value as messages show it: compact JSON, cut short.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(37).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("at {path}: ")
    }
}

fn type_word(t: &str) -> &str {
    match t {
        "null" => "null",
        "boolean" => "a boolean",
        "object" => "an object",
        "array" => "an array",
        "number" => "a number",
        "string" => "a string",
        "integer" => "an integer",
        other => other,
    }
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "integer" => is_integer(value),
        _ => true,
    }
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// The bounds an integer `format` implies (`uint8`: 0..=255).
pub(crate) fn format_bounds(format: &str) -> Option<(f64, f64)> {
    Some(match format {
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "int64" => (i64::MIN as f64, i64::MAX as f64),
        "uint8" => (0.0, u8::MAX.into()),
        "uint16" => (0.0, u16::MAX.into()),
        "uint32" => (0.0, u32::MAX.into()),
        "uint64" | "uint" => (0.0, u64::MAX as f64),
        _ => return None,
    })
}

impl Checker<'_> {
    fn check(
        &self,
        schema: &Schema,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        match schema.as_bool() {
            Some(true) => return Ok(()),
            Some(false) => return Err(format!("{}no value is allowed here", at(path))),
            None => {}
        }
        let Some(obj) = schema.as_object() else {
            return Ok(());
        };
        if let Some(Value::String(reference)) = obj.get("$ref") {
            if let Some(target) = self.doc.resolve(reference) {
                self.check(target, value, path, depth + 1)?;
            }
        }
        self.check_type(obj, value, path)?;
        if let Some(Value::Array(allowed)) = obj.get("enum") {
            if !allowed.contains(value) {
                let list: Vec<_> = allowed.iter().map(shown).collect();
                return Err(format!(
                    "{}expected one of {}, got {}",
                    at(path),
                    list.join(", "),
                    shown(value)
                ));
            }
        }
        if let Some(constant) = obj.get("const") {
            if constant != value {
                return Err(format!(
                    "{}expected {}, got {}",
                    at(path),
                    shown(constant),
                    shown(value)
                ));
            }
        }
        self.check_number(obj, value, path)?;
        self.check_string(obj, value, path)?;
        self.check_object(obj, value, path, depth)?;
        self.check_array(obj, value, path, depth)?;
        self.check_combinators(obj, value, path, depth)
    }

    fn check_type(
        &self,
        obj: &Map<String, Value>,
        value: &Value,
        path: &str,
    ) -> Result<(), String> {
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return Ok(()),
        };
        if types.iter().any(|t| has_type(value, t)) {
            return Ok(());
        }
        let words: Vec<_> = types.iter().map(|t| type_word(t)).collect();
        Err(format!(
            "{}expected {}, got {}",
            at(path),
            words.join(" or "),
            shown(value)
        ))
    }

    fn check_number(
        &self,
        obj: &Map<String, Value>,
        value: &Value,
        path: &str,
    ) -> Result<(), String> {
        let Some(n) = value.as_f64() else {
            return Ok(());
        };
        let (mut low, mut high) = obj
            .get("format")
            .and_then(Value::as_str)
            .and_then(format_bounds)
            .unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
        if let Some(m) = obj.get("minimum").and_then(Value::as_f64) {
            low = low.max(m);
        }
        if let Some(m) = obj.get("maximum").and_then(Value::as_f64) {
            high = high.min(m);
        }
        let too_low = n < low
            || obj
                .get("exclusiveMinimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n <= m);
        let too_high = n > high
            || obj
                .get("exclusiveMaximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n >= m);
        if too_low || too_high {
            return Err(format!("{}{} is out of range", at(path), shown(value)));
        }
        Ok(())
    }

    fn check_string(
        &self,
        obj: &Map<String, Value>,
        value: &Value,
        path: &str,
    ) -> Result<(), String> {
        let Some(s) = value.as_str() else {
            return Ok(());
        };
        let len = s.chars().count() as u64;
        if obj
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
            || obj
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
        {
            return Err(format!("{}{} has the wrong length", at(path), shown(value)));
        }
        Ok(())
    }

    fn check_object(
        &self,
        obj: &Map<String, Value>,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        let Some(map) = value.as_object() else {
            return Ok(());
        };
        let properties = obj.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = obj.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    return Err(format!("{}missing field '{name}'", at(path)));
                }
            }
        }
        for (key, v) in map {
            let inner = format!("{path}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(s) => {
                    if let Ok(s) = <&Schema>::try_from(s) {
                        self.check(s, v, &inner, depth + 1)?;
                    }
                }
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{}unknown field '{key}'", at(path)));
                    }
                    Some(s) => {
                        if let Ok(s) = <&Schema>::try_from(s) {
                            self.check(s, v, &inner, depth + 1)?;
                        }
                    }
                    None => {}
                },
            }
        }
        Ok(())
    }

    fn check_array(
        &self,
        obj: &Map<String, Value>,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        let Some(items) = value.as_array() else {
            return Ok(());
        };
        let len = items.len() as u64;
        if obj
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
            || obj
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
        {
            return Err(format!(
                "{}an array of {len} items is the wrong length",
                at(path)
            ));
        }
        let prefix: &[Value] = obj
            .get("prefixItems")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        for (i, item) in items.iter().enumerate() {
            let schema = prefix.get(i).or_else(|| obj.get("items"));
            if let Some(Ok(s)) = schema.map(<&Schema>::try_from) {
                self.check(s, item, &format!("{path}[{i}]"), depth + 1)?;
            }
        }
        Ok(())
    }

    fn check_combinators(
        &self,
        obj: &Map<String, Value>,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        let branches = |key: &str| -> Vec<&Schema> {
            obj.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| <&Schema>::try_from(s).ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        for s in branches("allOf") {
            self.check(s, value, path, depth + 1)?;
        }
        for key in ["anyOf", "oneOf"] {
            let alternatives = branches(key);
            if alternatives.is_empty() {
                continue;
            }
            let mut errors = Vec::new();
            let mut matched = 0;
            for s in &alternatives {
                match self.check(s, value, path, depth + 1) {
                    Ok(()) => matched += 1,
                    Err(e) => errors.push(e),
                }
            }
            match (key, matched) {
                (_, 0) if errors.len() == 1 => return Err(errors.remove(0)),
                (_, 0) => {
                    return Err(format!(
                        "{}{} matches none of the {} shapes allowed ({})",
                        at(path),
                        shown(value),
                        alternatives.len(),
                        errors.join("; ")
                    ))
                }
                ("oneOf", n) if n > 1 => {
                    return Err(format!(
                        "{}{} matches {n} of the shapes allowed, where it must match one",
                        at(path),
                        shown(value)
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::contract::private::{document, method, schema, Describe};
    use crate::contract::Info;

    #[derive(schemars::JsonSchema, serde::Deserialize)]
    #[allow(dead_code)]
    struct Config {
        name: String,
        port: u16,
        mode: Mode,
        tags: Vec<String>,
    }

    #[derive(schemars::JsonSchema, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Mode {
        Fast,
        Safe { level: u8 },
    }

    fn doc() -> Document {
        let methods: [Describe; 1] = [|g| {
            method("load", "")
                .param("config", false, schema::<Config>(g))
                .param("retries", true, schema::<Option<u32>>(g))
                .returns(schema::<()>(g), false)
                .finish(g)
        }];
        document(Info::new("t", "1"), &methods)
    }

    fn check(args: &[Value], kwargs: &[(&str, Value)]) -> Result<(), String> {
        let kwargs: Vec<_> = kwargs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        doc()
            .check_call("load", args, &kwargs)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn good_calls_pass() {
        let config = json!({"name": "a", "port": 80, "mode": "fast", "tags": []});
        check(std::slice::from_ref(&config), &[]).unwrap();
        check(&[config.clone(), json!(3)], &[]).unwrap();
        check(&[config.clone(), json!(null)], &[]).unwrap();
        check(&[], &[("config", config.clone()), ("retries", json!(1))]).unwrap();
        let safe = json!({"name": "a", "port": 80, "mode": {"safe": {"level": 2}}, "tags": ["x"]});
        check(&[safe], &[]).unwrap();
        assert!(doc().check_call("other", &[json!(1)], &[]).is_ok());
    }

    #[test]
    fn bad_calls_name_the_parameter() {
        let config = |v: Value| {
            let mut c = json!({"name": "a", "port": 80, "mode": "fast", "tags": []});
            c.as_object_mut()
                .unwrap()
                .extend(v.as_object().unwrap().clone());
            c
        };
        let cases = [
            (vec![], vec![], "load(): parameter 'config': missing"),
            (
                vec![json!(1), json!(2), json!(3)],
                vec![],
                "load(): takes 2 positional arguments but 3 were given",
            ),
            (
                vec![config(json!({}))],
                vec![("nope", json!(1))],
                "load(): has no parameter 'nope'",
            ),
            (
                vec![config(json!({"port": 70000}))],
                vec![],
                "load(): parameter 'config': at .port: 70000 is out of range",
            ),
            (
                vec![config(json!({"name": 5}))],
                vec![],
                "load(): parameter 'config': at .name: expected a string, got 5",
            ),
            (
                vec![config(json!({"tags": [1]}))],
                vec![],
                "load(): parameter 'config': at .tags[0]: expected a string, got 1",
            ),
            (
                vec![config(json!({}))],
                vec![("retries", json!(-1))],
                "load(): parameter 'retries': -1 is out of range",
            ),
            (
                vec![json!({"name": "a"})],
                vec![],
                "load(): parameter 'config': missing field 'port'",
            ),
        ];
        for (args, kwargs, expected) in cases {
            assert_eq!(check(&args, &kwargs).unwrap_err(), expected);
        }
        let e = check(&[config(json!({"mode": "slow"}))], &[]).unwrap_err();
        assert!(
            e.starts_with("load(): parameter 'config': at .mode: "),
            "{e}"
        );
    }
}
