//! SCIM's discovery endpoints (RFC 7644 §4): `/ResourceTypes` and
//! `/Schemas`, describing exactly what [`super::scim`] serves: Users (with
//! the enterprise extension's `department`) and Groups (departments), and
//! for each attribute whether it is required, writable and returned.
//! `/ServiceProviderConfig` is in [`super::scim`].

use super::Caller;
use super::scim::{Answer, ENTERPRISE, GROUP, LIST, ScimError, USER, admin_only, scim};
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use serde_json::{Value, json};

const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// One attribute of a schema (RFC 7643 §7), single-valued, optional,
/// read-write, returned by default, not unique, case-insensitive.
fn attr(name: &str, kind: &str, description: &str) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": false, "description": description, "required": false,
        "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none",
    })
}

fn with(mut a: Value, changes: Value) -> Value {
    if let (Some(a), Value::Object(c)) = (a.as_object_mut(), changes) {
        a.extend(c);
    }
    a
}

fn user_schema() -> Value {
    let sub = |name: &str, description: &str| attr(name, "string", description);
    let attributes = vec![
        with(
            attr("userName", "string", "The Skein user name: 1 to 64 lowercase letters, digits, '.', '-' or '_'"),
            json!({"required": true, "uniqueness": "server"}),
        ),
        with(
            attr("name", "complex", "The user's name; Skein keeps it as the display name"),
            json!({"subAttributes": [sub("formatted", "The full name, as shown")]}),
        ),
        attr("displayName", "string", "The name shown to colleagues"),
        attr("title", "string", "The job title"),
        with(
            attr("emails", "complex", "The work e-mail address (one is kept)"),
            json!({"multiValued": true, "subAttributes": [
                sub("value", "The address"), sub("type", "work"),
                attr("primary", "boolean", "Whether it is the primary address"),
            ]}),
        ),
        with(
            attr("phoneNumbers", "complex", "The work phone number (one is kept)"),
            json!({"multiValued": true, "subAttributes": [sub("value", "The number"), sub("type", "work")]}),
        ),
        attr("active", "boolean", "false deactivates the user: their sessions end and they cannot log in"),
        with(
            attr("password", "string", "The password, set on create or replace; never returned"),
            json!({"mutability": "writeOnly", "returned": "never"}),
        ),
    ];
    schema(USER, "User", "A user of the organisation", attributes)
}

fn enterprise_schema() -> Value {
    let attributes = vec![attr("department", "string", "The department's path, such as Engineering/Backend")];
    schema(ENTERPRISE, "EnterpriseUser", "The user's department", attributes)
}

fn group_schema() -> Value {
    let members = with(
        attr("members", "complex", "The users directly in the department"),
        json!({"multiValued": true, "subAttributes": [
            with(attr("value", "string", "The user's id"), json!({"mutability": "immutable"})),
            with(attr("display", "string", "The user name"), json!({"mutability": "readOnly"})),
            with(attr("$ref", "reference", "The user's location"), json!({"mutability": "immutable", "referenceTypes": ["User"]})),
        ]}),
    );
    let name = with(
        attr("displayName", "string", "The department's path, such as Engineering/Backend"),
        json!({"required": true, "uniqueness": "server"}),
    );
    schema(GROUP, "Group", "A department", vec![name, members])
}

fn schema(id: &str, name: &str, description: &str, attributes: Vec<Value>) -> Value {
    json!({
        "schemas": [SCHEMA], "id": id, "name": name, "description": description, "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{id}")},
    })
}

fn resource_types() -> Vec<Value> {
    let kind = |id: &str, endpoint: &str, schema: &str, description: &str, extensions: Value| {
        json!({
            "schemas": [RESOURCE_TYPE], "id": id, "name": id, "endpoint": endpoint, "description": description,
            "schema": schema, "schemaExtensions": extensions,
            "meta": {"resourceType": "ResourceType", "location": format!("/scim/v2/ResourceTypes/{id}")},
        })
    };
    vec![
        kind("User", "/Users", USER, "Users of the organisation", json!([{"schema": ENTERPRISE, "required": false}])),
        kind("Group", "/Groups", GROUP, "Departments", json!([])),
    ]
}

fn list(resources: Vec<Value>) -> Value {
    json!({"schemas": [LIST], "totalResults": resources.len(), "startIndex": 1, "itemsPerPage": resources.len(), "Resources": resources})
}

fn one(found: Option<Value>, what: &str, id: &str) -> Answer {
    let found = found.ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, None, format!("no {what} {id:?}")))?;
    Ok(scim(StatusCode::OK, found))
}

/// `GET /ResourceTypes`.
pub async fn list_resource_types(Extension(caller): Extension<Caller>) -> Answer {
    admin_only(&caller)?;
    Ok(scim(StatusCode::OK, list(resource_types())))
}

/// `GET /ResourceTypes/{id}`.
pub async fn get_resource_type(Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Answer {
    admin_only(&caller)?;
    one(resource_types().into_iter().find(|t| t["id"] == id.as_str()), "resource type", &id)
}

/// `GET /Schemas`.
pub async fn list_schemas(Extension(caller): Extension<Caller>) -> Answer {
    admin_only(&caller)?;
    Ok(scim(StatusCode::OK, list(vec![user_schema(), enterprise_schema(), group_schema()])))
}

/// `GET /Schemas/{id}`.
pub async fn get_schema(Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Answer {
    admin_only(&caller)?;
    let all = [user_schema(), enterprise_schema(), group_schema()];
    one(all.into_iter().find(|s| s["id"] == id.as_str()), "schema", &id)
}

/// Any other path under `/scim/v2`.
pub async fn unknown(Extension(caller): Extension<Caller>) -> Answer {
    admin_only(&caller)?;
    Err(ScimError::new(
        StatusCode::NOT_FOUND,
        None,
        "no such SCIM endpoint; there are /Users, /Groups, /ResourceTypes, /Schemas and /ServiceProviderConfig",
    ))
}

/// Attributes a projection always keeps (RFC 7643 §3.1, `returned: always`).
const ALWAYS: [&str; 2] = ["id", "schemas"];

/// `?attributes=…&excludedAttributes=…` (RFC 7644 §3.4.2.5): which of a
/// resource's attributes an answer holds. Names may carry their schema's
/// URN (`urn:…:enterprise:2.0:User:department`) or name a sub-attribute
/// (`name.formatted`, `emails.value`), and are matched ignoring case.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    /// Only these (and `id`, `schemas`).
    pub attributes: Option<String>,
    /// All but these.
    pub excluded_attributes: Option<String>,
}

fn strip_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(prefix)).map(|_| &s[prefix.len()..])
}

/// Each named attribute as (top-level key, sub-attribute).
fn paths(list: &str) -> Vec<(String, Option<String>)> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            if let Some(rest) = strip_ci(p, ENTERPRISE) {
                let rest = rest.trim_start_matches(':');
                return (ENTERPRISE.to_owned(), (!rest.is_empty()).then(|| rest.to_owned()));
            }
            let p = strip_ci(p, USER).or_else(|| strip_ci(p, GROUP)).map_or(p, |r| r.trim_start_matches(':'));
            match p.split_once('.') {
                Some((a, b)) => (a.to_owned(), Some(b.to_owned())),
                None => (p.to_owned(), None),
            }
        })
        .collect()
}

/// `v` (an object, or a list of them) with only the sub-attributes `keep`.
fn only(v: &Value, keep: &[&String]) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| keep.iter().any(|s| s.eq_ignore_ascii_case(k)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|e| only(e, keep)).collect()),
        other => other.clone(),
    }
}

fn drop_sub(v: &mut Value, sub: &str) {
    match v {
        Value::Object(o) => o.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
        Value::Array(a) => a.iter_mut().for_each(|e| drop_sub(e, sub)),
        _ => {}
    }
}

impl Projection {
    /// Applies the projection to one resource.
    pub fn apply(&self, v: &mut Value) {
        let Value::Object(obj) = v else { return };
        if let Some(list) = self.attributes.as_deref().filter(|a| !a.trim().is_empty()) {
            let wanted = paths(list);
            let kept = obj
                .iter()
                .filter_map(|(k, val)| {
                    if ALWAYS.contains(&k.as_str()) {
                        return Some((k.clone(), val.clone()));
                    }
                    let subs: Vec<&Option<String>> =
                        wanted.iter().filter(|(w, _)| w.eq_ignore_ascii_case(k)).map(|(_, s)| s).collect();
                    if subs.is_empty() {
                        None
                    } else if subs.iter().any(|s| s.is_none()) {
                        Some((k.clone(), val.clone()))
                    } else {
                        let keep: Vec<&String> = subs.iter().filter_map(|s| s.as_ref()).collect();
                        Some((k.clone(), only(val, &keep)))
                    }
                })
                .collect();
            *obj = kept;
        }
        if let Some(list) = self.excluded_attributes.as_deref() {
            for (key, sub) in paths(list) {
                if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(&key)) {
                    continue;
                }
                match sub {
                    None => obj.retain(|k, _| !k.eq_ignore_ascii_case(&key)),
                    Some(sub) => obj
                        .iter_mut()
                        .filter(|(k, _)| k.eq_ignore_ascii_case(&key))
                        .for_each(|(_, v)| drop_sub(v, &sub)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projections_keep_and_drop_what_they_name() {
        let user = json!({"schemas": [USER], "id": "3", "userName": "dana", "name": {"formatted": "Dana"},
            "emails": [{"value": "d@x", "type": "work"}], ENTERPRISE: {"department": "Ops"}, "meta": {}});
        let mut v = user.clone();
        Projection {
            attributes: Some(
                "userName, emails.value, urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department".into(),
            ),
            excluded_attributes: None,
        }
        .apply(&mut v);
        assert_eq!(
            v,
            json!({"schemas": [USER], "id": "3", "userName": "dana", "emails": [{"value": "d@x"}], ENTERPRISE: {"department": "Ops"}})
        );
        let mut v = user.clone();
        Projection {
            attributes: None,
            excluded_attributes: Some("name,id,urn:ietf:params:scim:schemas:core:2.0:User:emails.type".into()),
        }
        .apply(&mut v);
        assert!(v.get("name").is_none() && v["id"] == "3" && v["emails"] == json!([{"value": "d@x"}]));
    }
}
