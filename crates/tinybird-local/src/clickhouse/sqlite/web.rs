//! JSON and URL functions: `JSONExtract*`, `JSONHas`, `JSONLength`, and ClickHouse's
//! lenient URL parts (`domain`, `path`, `cutQueryString`, `extractURLParameter`, ...).
//! A document is parsed within the query's memory budget; every answer is a part of its
//! input, so no output check is needed.

use rusqlite::functions::Context;
use rusqlite::types::Value;
use rusqlite::{Connection, Result};
use serde_json::Value as Json;

use super::{fail, flags, text_arg};

/// Walks `keys` (names, or 1-based indexes; negative from the end) into a JSON document.
fn json_path<'a>(doc: &'a Json, keys: &[Value]) -> Option<&'a Json> {
    let mut cur = doc;
    for key in keys {
        cur = match (cur, key) {
            (Json::Object(map), Value::Text(k)) => map.get(k)?,
            (Json::Array(items), Value::Integer(i)) if *i > 0 => items.get(*i as usize - 1)?,
            (Json::Array(items), Value::Integer(i)) if *i < 0 => {
                items.get(items.len().checked_sub(i.unsigned_abs() as usize)?)?
            }
            (Json::Object(map), Value::Integer(i)) if *i > 0 => {
                map.values().nth(*i as usize - 1)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn json(ctx: &Context<'_>) -> Result<Value> {
    let kind = text_arg(ctx, 0).unwrap_or_default();
    let parsed = match text_arg(ctx, 1) {
        Some(text) => super::arrays::parse_held(&kind, &text)?,
        None => None,
    };
    let keys: Vec<Value> = (2..ctx.len()).map(|i| ctx.get_raw(i).into()).collect();
    let found = parsed.as_ref().and_then(|(d, _held)| json_path(d, &keys));
    Ok(match kind.as_str() {
        "JSONHas" => Value::Integer(i64::from(found.is_some())),
        "JSONExtractString" => Value::Text(match found {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Number(n)) => n.to_string(),
            _ => String::new(),
        }),
        "JSONExtractRaw" => Value::Text(found.map(|v| v.to_string()).unwrap_or_default()),
        "JSONExtractInt" | "JSONExtractUInt" => Value::Integer(match found {
            Some(Json::Number(n)) => n
                .as_i64()
                .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
            Some(Json::String(s)) => s.parse().unwrap_or(0),
            Some(Json::Bool(b)) => i64::from(*b),
            _ => 0,
        }),
        "JSONExtractFloat" => Value::Real(match found {
            Some(Json::Number(n)) => n.as_f64().unwrap_or(0.0),
            Some(Json::String(s)) => s.parse().unwrap_or(0.0),
            _ => 0.0,
        }),
        "JSONExtractBool" => Value::Integer(i64::from(matches!(found, Some(Json::Bool(true))))),
        "JSONLength" => Value::Integer(match found {
            Some(Json::Array(a)) => a.len() as i64,
            Some(Json::Object(o)) => o.len() as i64,
            _ => 0,
        }),
        other => return Err(fail(format!("unknown JSON function {other}"))),
    })
}

/// ClickHouse's lenient URL parts.
pub fn url_part(kind: &str, url: &str, param: Option<&str>) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i], &url[i + 3..]),
        None if url.starts_with("//") => ("", &url[2..]),
        None => ("", url),
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..host_end];
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    let after = &rest[host_end..];
    let (before_fragment, fragment) = after.split_once('#').unwrap_or((after, ""));
    let (path, query) = before_fragment
        .split_once('?')
        .unwrap_or((before_fragment, ""));
    let without_www = host.strip_prefix("www.").unwrap_or(host);
    match kind {
        "domain" => host.into(),
        "domainWithoutWWW" => without_www.into(),
        "topLevelDomain" => host.rsplit('.').next().unwrap_or("").into(),
        "protocol" => scheme.into(),
        "path" => path.into(),
        "pathFull" => after.into(),
        "queryString" => query.into(),
        "fragment" => fragment.into(),
        "cutQueryString" => {
            let cut = url.find('?').unwrap_or(url.len());
            let frag = url.find('#').map_or("", |i| &url[i..]);
            format!(
                "{}{}",
                &url[..cut.min(url.find('#').unwrap_or(url.len()))],
                if cut < url.len() { frag } else { "" }
            )
        }
        "cutFragment" => url.split('#').next().unwrap_or("").into(),
        "cutWWW" => url.replacen("://www.", "://", 1),
        "extractURLParameter" => query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| Some(*k) == param)
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    let f = flags();
    conn.create_scalar_function("ch_json", -1, f, json)?;
    conn.create_scalar_function("ch_url", -1, f, |ctx| {
        let kind = text_arg(ctx, 0).unwrap_or_default();
        let Some(url) = text_arg(ctx, 1) else {
            return Ok(None);
        };
        let param = if ctx.len() > 2 {
            text_arg(ctx, 2)
        } else {
            None
        };
        Ok(Some(url_part(&kind, &url, param.as_deref())))
    })?;
    Ok(())
}
