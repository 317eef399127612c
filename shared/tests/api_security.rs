//! API-level security tests: authentication, per-user isolation, administrators, and what
//! error bodies may (not) carry. The router is driven in process, without sockets.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use runledger::auth::{Authenticator, JwtSettings};
use runledger_testkit::api::{Api, Reply, assert_no_leak};
use runledger_testkit::builders::external_case;
use runledger_testkit::tokens::SECRET;
use runledger_testkit::wire::absent_id;
use serde_json::{Value, json};

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Signs arbitrary claims with `alg` and `secret`.
fn sign(alg: Algorithm, claims: &Value, secret: &[u8]) -> String {
    runledger::crypto::install();
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
        .expect("signing")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Routes that need a token, as (method, path, body).
fn protected_routes(case: &str, suite: &str, execution: &str) -> Vec<(Method, String, Value)> {
    let external = external_case("x", 1);
    vec![
        (Method::GET, "/api/v1/test-cases".into(), Value::Null),
        (Method::POST, "/api/v1/test-cases".into(), external.clone()),
        (
            Method::GET,
            format!("/api/v1/test-cases/{case}"),
            Value::Null,
        ),
        (Method::PUT, format!("/api/v1/test-cases/{case}"), external),
        (
            Method::DELETE,
            format!("/api/v1/test-cases/{case}"),
            Value::Null,
        ),
        (Method::GET, "/api/v1/test-suites".into(), Value::Null),
        (
            Method::GET,
            format!("/api/v1/test-suites/{suite}"),
            Value::Null,
        ),
        (
            Method::DELETE,
            format!("/api/v1/test-suites/{suite}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/api/v1/executions/case".into(),
            json!({"test_case_id": case}),
        ),
        (
            Method::POST,
            "/api/v1/executions/suite".into(),
            json!({"test_suite_id": suite}),
        ),
        (Method::GET, "/api/v1/executions".into(), Value::Null),
        (
            Method::GET,
            format!("/api/v1/executions/{execution}"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/api/v1/executions/{execution}/steps"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/v1/executions/{execution}/steps"),
            json!({"steps": [{"index": 0, "status": "passed"}]}),
        ),
        (
            Method::GET,
            format!("/api/v1/executions/{execution}/children"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/api/v1/executions/{execution}/history"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/v1/executions/{execution}/complete"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/v1/executions/{execution}/cancel"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/v1/executions/{execution}/retry"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/api/v1/analytics/test-cases/{case}"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/api/v1/analytics/test-suites/{suite}"),
            Value::Null,
        ),
        (Method::GET, "/api/v1/analytics/flaky".into(), Value::Null),
    ]
}

fn body_of(value: &Value) -> Bytes {
    if value.is_null() {
        Bytes::new()
    } else {
        Bytes::from(serde_json::to_vec(value).unwrap())
    }
}

/// Sends `authorization` as is to a protected route.
async fn with_authorization(api: &Api, authorization: &[u8]) -> Reply {
    api.raw(
        Method::GET,
        "/api/v1/test-cases",
        &[("authorization", authorization)],
        Bytes::new(),
    )
    .await
}

/// Sends a bearer token to a protected route.
async fn with_token(api: &Api, token: &str) -> Reply {
    with_authorization(api, format!("Bearer {token}").as_bytes()).await
}

#[tokio::test]
async fn health_needs_no_token() {
    let api = Api::new();
    let reply = api
        .send(Method::GET, "/api/v1/health", None, Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["status"], "ok");
    assert!(reply.json()["version"].is_string());
    // A broken token does not matter there either.
    let reply = api
        .raw(
            Method::GET,
            "/api/v1/health",
            &[("authorization", b"Bearer garbage")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn every_protected_route_needs_a_token() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 1).await;
    let suite = api.create_suite(&alice, "suite", &[&case]).await;
    let execution = api.start_case(&alice, &case).await;
    let before = api.snapshot(&execution, &alice).await;

    for (method, path, body) in protected_routes(&case, &suite, &execution) {
        let reply = api.send(method.clone(), &path, None, body_of(&body)).await;
        let problem = reply.unauthorized("unauthenticated");
        assert!(
            problem["detail"].is_string(),
            "{method} {path}: {}",
            reply.text()
        );
        assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer"));
    }
    // Unauthenticated requests change nothing, and do not reveal whether an id exists.
    assert_eq!(api.snapshot(&execution, &alice).await, before);
    assert_eq!(
        api.list_ids("/api/v1/test-cases", &alice).await,
        vec![case.clone()]
    );
    assert_eq!(
        api.list_ids("/api/v1/test-suites", &alice).await,
        vec![suite.clone()]
    );
    let unknown = api
        .send(
            Method::GET,
            &format!("/api/v1/executions/{}", absent_id("ex_")),
            None,
            Bytes::new(),
        )
        .await;
    unknown.unauthorized("unauthenticated");
}

#[tokio::test]
async fn malformed_authorization_headers_are_401() {
    let api = Api::new();
    let valid = api.token("alice");
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Bearer    ".to_vec(),
        b"Basic x".to_vec(),
        b"Basic YWxpY2U6cGFzc3dvcmQ=".to_vec(),
        b"Bearer garbage".to_vec(),
        b"Bearer not.a.jwt".to_vec(),
        b"Bearer a.b.c.d".to_vec(),
        b"Bearer ...".to_vec(),
        format!("Token {valid}").into_bytes(),
        valid.clone().into_bytes(),
        format!("Bearer {valid} extra").into_bytes(),
        format!("Bearer {valid}x").into_bytes(),
        format!("Bearer {}", &valid[..valid.len() - 2]).into_bytes(),
        format!("Bearer {}", "A".repeat(8_000)).into_bytes(),
    ];
    for authorization in cases {
        let reply = with_authorization(&api, &authorization).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{:?}: {}",
            String::from_utf8_lossy(&authorization),
            reply.text()
        );
        reply.unauthorized("invalid_token");
    }
    // A header that is not visible ASCII cannot carry a token. The router reads it as
    // absent (`unauthenticated`); either code is a 401 with a Bearer challenge.
    let reply = with_authorization(&api, b"Bearer \xff\xfe").await;
    let problem = reply.problem(
        StatusCode::UNAUTHORIZED,
        reply.json()["code"].as_str().unwrap(),
    );
    assert!(
        ["unauthenticated", "invalid_token"].contains(&problem["code"].as_str().unwrap()),
        "{}",
        reply.text()
    );
    assert!(
        reply
            .header(header::WWW_AUTHENTICATE)
            .unwrap()
            .starts_with("Bearer")
    );
    // The valid token itself works (so the refusals above are about the header).
    let reply = with_token(&api, &valid).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn expired_tokens_are_401_token_expired() {
    let api = Api::new();
    // Well past the 30 s leeway.
    let expired = sign(
        Algorithm::HS256,
        &json!({"sub": "alice", "exp": now() - 600}),
        SECRET.as_bytes(),
    );
    let reply = with_token(&api, &expired).await;
    reply.unauthorized("token_expired");
    let ancient = sign(
        Algorithm::HS256,
        &json!({"sub": "alice", "exp": 1}),
        SECRET.as_bytes(),
    );
    with_token(&api, &ancient)
        .await
        .unauthorized("token_expired");
    // An expired admin token grants nothing either.
    let expired_admin = sign(
        Algorithm::HS256,
        &json!({"sub": "root", "exp": now() - 600, "roles": ["admin"]}),
        SECRET.as_bytes(),
    );
    with_token(&api, &expired_admin)
        .await
        .unauthorized("token_expired");
}

#[tokio::test]
async fn wrongly_signed_tokens_are_401() {
    let api = Api::new();
    let claims = json!({"sub": "alice", "exp": now() + 600, "roles": ["admin"]});
    let foreign = sign(
        Algorithm::HS256,
        &claims,
        b"another-secret-another-secret-another",
    );
    with_token(&api, &foreign)
        .await
        .unauthorized("invalid_token");
    // An empty secret.
    let empty = sign(Algorithm::HS256, &claims, b"");
    with_token(&api, &empty).await.unauthorized("invalid_token");
    // A prefix of the right secret.
    let prefix = sign(Algorithm::HS256, &claims, &SECRET.as_bytes()[..32]);
    with_token(&api, &prefix)
        .await
        .unauthorized("invalid_token");
}

#[tokio::test]
async fn tampered_payloads_are_401() {
    let api = Api::new();
    let token = api.token("alice");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let forged = b64(
        json!({"sub": "alice", "exp": now() + 600, "roles": ["admin"]})
            .to_string()
            .as_bytes(),
    );
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    with_token(&api, &tampered)
        .await
        .unauthorized("invalid_token");
    let other_user = b64(json!({"sub": "bob", "exp": now() + 600})
        .to_string()
        .as_bytes());
    let tampered = format!("{}.{other_user}.{}", parts[0], parts[2]);
    with_token(&api, &tampered)
        .await
        .unauthorized("invalid_token");
    // The right header and payload with the signature stripped.
    let stripped = format!("{}.{}.", parts[0], parts[1]);
    with_token(&api, &stripped)
        .await
        .unauthorized("invalid_token");
}

#[tokio::test]
async fn alg_none_tokens_are_401() {
    let api = Api::new();
    let claims = b64(
        json!({"sub": "alice", "exp": now() + 600, "roles": ["admin"]})
            .to_string()
            .as_bytes(),
    );
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
        r#"{"alg":"NONE","typ":"JWT"}"#,
        r#"{"typ":"JWT"}"#,
    ] {
        let header = b64(header.as_bytes());
        for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
            let reply = with_token(&api, &token).await;
            reply.unauthorized("invalid_token");
        }
    }
    // `alg: none` with a real HS256 signature over the same bytes is still refused.
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let valid_sig = api.token("alice");
    let sig = valid_sig.rsplit('.').next().unwrap();
    with_token(&api, &format!("{header}.{claims}.{sig}"))
        .await
        .unauthorized("invalid_token");
}

#[tokio::test]
async fn only_hs256_is_accepted() {
    let api = Api::new();
    let claims = json!({"sub": "alice", "exp": now() + 600});
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(alg, &claims, SECRET.as_bytes());
        let reply = with_token(&api, &token).await;
        reply.unauthorized("invalid_token");
    }
    // Sanity: the same claims signed HS256 with the same secret pass.
    let token = sign(Algorithm::HS256, &claims, SECRET.as_bytes());
    let reply = with_token(&api, &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn tokens_without_required_claims_are_401() {
    let api = Api::new();
    let exp = now() + 600;
    for claims in [
        json!({"exp": exp}),
        json!({"exp": exp, "roles": ["admin"]}),
        json!({"sub": "alice"}),
        json!({"sub": "alice", "roles": ["admin"]}),
        json!({}),
        json!({"sub": "", "exp": exp}),
        json!({"sub": null, "exp": exp}),
        json!({"sub": 42, "exp": exp}),
        json!({"sub": "alice", "exp": "tomorrow"}),
        json!({"sub": "alice", "exp": null}),
        json!({"sub": "alice", "exp": exp, "roles": "admin"}),
        json!({"sub": "a".repeat(300), "exp": exp}),
        json!({"sub": "al\u{0}ice", "exp": exp}),
    ] {
        let token = sign(Algorithm::HS256, &claims, SECRET.as_bytes());
        let reply = with_token(&api, &token).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{claims}: {}",
            reply.text()
        );
        reply.unauthorized("invalid_token");
    }
    // A JSON array as the payload.
    let token = sign(Algorithm::HS256, &json!(["alice"]), SECRET.as_bytes());
    with_token(&api, &token).await.unauthorized("invalid_token");
}

#[tokio::test]
async fn a_configured_audience_must_be_in_the_token() {
    let api = Api::with_authenticator(
        Authenticator::new(JwtSettings {
            secret: SECRET.as_bytes().to_vec(),
            issuer: None,
            audience: Some("runledger-api".into()),
        })
        .unwrap(),
    );
    let exp = now() + 600;
    for claims in [
        json!({"sub": "alice", "exp": exp}),
        json!({"sub": "alice", "exp": exp, "aud": null}),
        json!({"sub": "alice", "exp": exp, "aud": "someone-else"}),
        json!({"sub": "alice", "exp": exp, "aud": ["someone-else"]}),
    ] {
        let token = sign(Algorithm::HS256, &claims, SECRET.as_bytes());
        with_token(&api, &token).await.unauthorized("invalid_token");
    }
    // Named alone, or among others (RFC 7519 allows an array), the audience is let in.
    for aud in [
        json!("runledger-api"),
        json!(["someone-else", "runledger-api"]),
    ] {
        let claims = json!({"sub": "alice", "exp": exp, "aud": aud});
        let reply = with_token(&api, &sign(Algorithm::HS256, &claims, SECRET.as_bytes())).await;
        assert_eq!(reply.status, StatusCode::OK, "{aud}: {}", reply.text());
    }
}

#[tokio::test]
async fn tokens_not_valid_yet_are_401() {
    let api = Api::new();
    // Beyond the 30 s leeway, for a user and for an administrator.
    for claims in [
        json!({"sub": "alice", "exp": now() + 3600, "nbf": now() + 600}),
        json!({"sub": "root", "exp": now() + 3600, "nbf": now() + 600, "roles": ["admin"]}),
    ] {
        let token = sign(Algorithm::HS256, &claims, SECRET.as_bytes());
        with_token(&api, &token).await.unauthorized("invalid_token");
    }
    // A `nbf` already passed is fine.
    let claims = json!({"sub": "alice", "exp": now() + 3600, "nbf": now() - 600});
    let reply = with_token(&api, &sign(Algorithm::HS256, &claims, SECRET.as_bytes())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

/// Everything alice owns, for the isolation tests.
struct Alices {
    case: String,
    suite: String,
    execution: String,
    suite_execution: String,
}

async fn alices_world(api: &Api, alice: &str) -> Alices {
    let case = api.create_external_case(alice, "alice's case", 2).await;
    let suite = api.create_suite(alice, "alice's suite", &[&case]).await;
    let execution = api.start_case(alice, &case).await;
    let suite_execution = api.start_suite(alice, &suite).await;
    Alices {
        case,
        suite,
        execution,
        suite_execution,
    }
}

/// `reply` must be the same 404 as for an id that does not exist at all.
#[track_caller]
fn same_as_absent(reply: &Reply, absent_reply: &Reply, code: &str) {
    let mine = reply.problem(StatusCode::NOT_FOUND, code);
    let theirs = absent_reply.problem(StatusCode::NOT_FOUND, code);
    assert_eq!(mine["title"], theirs["title"], "{}", reply.what);
    assert_eq!(mine["type"], theirs["type"], "{}", reply.what);
    assert_ne!(reply.status, StatusCode::FORBIDDEN);
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<String>>()
    };
    assert_eq!(keys(&mine), keys(&theirs), "{}", reply.what);
}

#[tokio::test]
async fn another_users_catalog_is_404_never_403() {
    let api = Api::new();
    let alice = api.token("alice");
    let bob = api.token("bob");
    let world = alices_world(&api, &alice).await;
    let case_before = api
        .get(&format!("/api/v1/test-cases/{}", world.case), &alice)
        .await
        .json();
    let suite_before = api
        .get(&format!("/api/v1/test-suites/{}", world.suite), &alice)
        .await
        .json();

    let bob_case = api.create_external_case(&bob, "bob's case", 1).await;
    let case_body = external_case("bob's takeover", 1);
    let suite_body = json!({"name": "bob's takeover", "test_case_ids": [bob_case]});

    for (kind, id, absent_id, body, code) in [
        (
            "test-cases",
            &world.case,
            absent_id("tc_"),
            &case_body,
            "test_case_not_found",
        ),
        (
            "test-suites",
            &world.suite,
            absent_id("ts_"),
            &suite_body,
            "test_suite_not_found",
        ),
    ] {
        let path = format!("/api/v1/{kind}/{id}");
        let absent_path = format!("/api/v1/{kind}/{absent_id}");
        same_as_absent(
            &api.get(&path, &bob).await,
            &api.get(&absent_path, &bob).await,
            code,
        );
        same_as_absent(
            &api.put(&path, &bob, body).await,
            &api.put(&absent_path, &bob, body).await,
            code,
        );
        same_as_absent(
            &api.delete(&path, &bob).await,
            &api.delete(&absent_path, &bob).await,
            code,
        );
    }

    // Alice's records are untouched.
    let case_after = api
        .get(&format!("/api/v1/test-cases/{}", world.case), &alice)
        .await;
    assert_eq!(case_after.status, StatusCode::OK);
    assert_eq!(case_after.json(), case_before);
    let suite_after = api
        .get(&format!("/api/v1/test-suites/{}", world.suite), &alice)
        .await;
    assert_eq!(suite_after.status, StatusCode::OK);
    assert_eq!(suite_after.json(), suite_before);

    // Bob's listings hold only his own records.
    assert_eq!(
        api.list_ids("/api/v1/test-cases", &bob).await,
        vec![bob_case.clone()]
    );
    assert_eq!(
        api.list_ids("/api/v1/test-cases?tag=api-test", &bob).await,
        vec![bob_case.clone()]
    );
    assert!(api.list_ids("/api/v1/test-suites", &bob).await.is_empty());
}

#[tokio::test]
async fn another_users_executions_are_404_on_every_route() {
    let api = Api::new();
    let alice = api.token("alice");
    let bob = api.token("bob");
    let world = alices_world(&api, &alice).await;
    let before = api.snapshot(&world.execution, &alice).await;
    let suite_before = api.snapshot(&world.suite_execution, &alice).await;
    let missing = absent_id("ex_");

    for target in [&world.execution, &world.suite_execution] {
        let routes: Vec<(Method, &str, Value)> = vec![
            (Method::GET, "", Value::Null),
            (Method::GET, "/steps", Value::Null),
            (
                Method::POST,
                "/steps",
                json!({"steps": [{"index": 0, "status": "passed"}]}),
            ),
            (Method::GET, "/children", Value::Null),
            (Method::GET, "/history", Value::Null),
            (Method::POST, "/complete", Value::Null),
            (Method::POST, "/cancel", json!({"reason": "bob was here"})),
            (Method::POST, "/retry", Value::Null),
        ];
        for (method, suffix, body) in routes {
            let reply = api
                .send(
                    method.clone(),
                    &format!("/api/v1/executions/{target}{suffix}"),
                    Some(&bob),
                    body_of(&body),
                )
                .await;
            let absent_reply = api
                .send(
                    method.clone(),
                    &format!("/api/v1/executions/{missing}{suffix}"),
                    Some(&bob),
                    body_of(&body),
                )
                .await;
            same_as_absent(&reply, &absent_reply, "execution_not_found");
            assert!(
                !reply.text().contains("alice"),
                "{}: names the owner: {}",
                reply.what,
                reply.text()
            );
        }
    }
    // ?fields= does not open a side door.
    let reply = api
        .get(
            &format!("/api/v1/executions/{}?fields=id,owner", world.execution),
            &bob,
        )
        .await;
    reply.problem(StatusCode::NOT_FOUND, "execution_not_found");

    // Nothing bob tried changed alice's executions.
    assert_eq!(api.snapshot(&world.execution, &alice).await, before);
    assert_eq!(
        api.snapshot(&world.suite_execution, &alice).await,
        suite_before
    );

    // Bob's execution listings show none of alice's, whatever the filter.
    for filter in [
        String::new(),
        "?kind=case".into(),
        "?kind=suite".into(),
        "?status=queued".into(),
        "?status=running".into(),
        "?status=pending".into(),
        format!("?test_case_id={}", world.case),
        format!("?test_suite_id={}", world.suite),
        "?tag=api-test".into(),
        "?limit=200".into(),
    ] {
        let ids = api
            .list_ids(&format!("/api/v1/executions{filter}"), &bob)
            .await;
        assert!(ids.is_empty(), "{filter}: bob sees {ids:?}");
    }
    // Alice does see her own, so the empty listings above are about ownership.
    let alices = api.list_ids("/api/v1/executions", &alice).await;
    assert!(alices.contains(&world.execution), "{alices:?}");
    assert!(alices.contains(&world.suite_execution), "{alices:?}");
}

#[tokio::test]
async fn another_users_cases_cannot_be_referenced_or_started() {
    let api = Api::new();
    let alice = api.token("alice");
    let bob = api.token("bob");
    let world = alices_world(&api, &alice).await;
    let bob_case = api.create_external_case(&bob, "bob's case", 1).await;

    // A suite naming alice's case is a validation error, exactly like an absent case.
    let reply = api
        .post(
            "/api/v1/test-suites",
            &bob,
            &json!({"name": "sneaky", "test_case_ids": [world.case]}),
        )
        .await;
    let mine = reply.validation("test_case_ids[0]");
    let reply = api
        .post(
            "/api/v1/test-suites",
            &bob,
            &json!({"name": "sneaky", "test_case_ids": [absent_id("tc_")]}),
        )
        .await;
    let theirs = reply.validation("test_case_ids[0]");
    assert_eq!(mine["errors"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["errors"].as_array().unwrap().len(), 1);
    let reply = api
        .post(
            "/api/v1/test-suites",
            &bob,
            &json!({"name": "sneaky", "test_case_ids": [bob_case, world.case]}),
        )
        .await;
    reply.validation("test_case_ids[1]");
    assert!(api.list_ids("/api/v1/test-suites", &bob).await.is_empty());

    // Nor can bob point his own suite at alice's case with a replacement.
    let bob_suite = api.create_suite(&bob, "bob's suite", &[&bob_case]).await;
    let reply = api
        .put(
            &format!("/api/v1/test-suites/{bob_suite}"),
            &bob,
            &json!({"name": "sneaky", "test_case_ids": [world.case]}),
        )
        .await;
    reply.validation("test_case_ids[0]");
    let suite = api
        .get(&format!("/api/v1/test-suites/{bob_suite}"), &bob)
        .await
        .json();
    assert_eq!(suite["test_case_ids"], json!([bob_case]));
    assert_eq!(suite["version"], 1);

    // Starting alice's case or suite is 404, as for an absent one.
    let started = api
        .post(
            "/api/v1/executions/case",
            &bob,
            &json!({"test_case_id": world.case}),
        )
        .await;
    let absent_started = api
        .post(
            "/api/v1/executions/case",
            &bob,
            &json!({"test_case_id": absent_id("tc_")}),
        )
        .await;
    same_as_absent(&started, &absent_started, "test_case_not_found");
    let started = api
        .post(
            "/api/v1/executions/suite",
            &bob,
            &json!({"test_suite_id": world.suite}),
        )
        .await;
    let absent_started = api
        .post(
            "/api/v1/executions/suite",
            &bob,
            &json!({"test_suite_id": absent_id("ts_")}),
        )
        .await;
    same_as_absent(&started, &absent_started, "test_suite_not_found");
    assert!(api.list_ids("/api/v1/executions", &bob).await.is_empty());
}

async fn start_with_key(api: &Api, token: &str, case: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    let body = serde_json::to_vec(&json!({"test_case_id": case})).unwrap();
    api.raw(
        Method::POST,
        "/api/v1/executions/case",
        &[
            ("authorization", bearer.as_bytes()),
            ("idempotency-key", b"shared-key-1"),
        ],
        body,
    )
    .await
}

#[tokio::test]
async fn idempotency_keys_are_per_user() {
    let api = Api::new();
    let alice = api.token("alice");
    let bob = api.token("bob");
    let alice_case = api.create_external_case(&alice, "alice's case", 1).await;
    let bob_case = api.create_external_case(&bob, "bob's case", 1).await;
    let first = start_with_key(&api, &alice, &alice_case).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    let alice_execution = first.json()["id"].as_str().unwrap().to_owned();

    // Bob using the same key gets his own new execution, never alice's.
    let bobs = start_with_key(&api, &bob, &bob_case).await;
    assert_eq!(bobs.status, StatusCode::ACCEPTED, "{}", bobs.text());
    assert_ne!(bobs.json()["id"], alice_execution);
    assert_eq!(bobs.json()["owner"], "bob");
    // Bob naming alice's case with alice's key learns nothing.
    let sneaky = start_with_key(&api, &bob, &alice_case).await;
    sneaky.problem(StatusCode::NOT_FOUND, "test_case_not_found");
    assert!(!sneaky.text().contains(&alice_execution));

    // Alice repeating her key gets her execution back.
    let again = start_with_key(&api, &alice, &alice_case).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["id"], alice_execution);
}

#[tokio::test]
async fn administrators_see_and_act_on_everyones_data() {
    let api = Api::new();
    let alice = api.token("alice");
    let root = api.admin_token("root");
    let world = alices_world(&api, &alice).await;

    for path in [
        format!("/api/v1/test-cases/{}", world.case),
        format!("/api/v1/test-suites/{}", world.suite),
        format!("/api/v1/executions/{}", world.execution),
        format!("/api/v1/executions/{}/steps", world.execution),
        format!("/api/v1/executions/{}/history", world.execution),
        format!("/api/v1/executions/{}/children", world.suite_execution),
    ] {
        let reply = api.get(&path, &root).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }
    let trace = api
        .get(&format!("/api/v1/executions/{}", world.execution), &root)
        .await
        .json();
    assert_eq!(trace["owner"], "alice");

    assert!(
        api.list_ids("/api/v1/test-cases", &root)
            .await
            .contains(&world.case)
    );
    assert!(
        api.list_ids("/api/v1/test-suites", &root)
            .await
            .contains(&world.suite)
    );
    let executions = api.list_ids("/api/v1/executions", &root).await;
    assert!(executions.contains(&world.execution), "{executions:?}");
    assert!(
        executions.contains(&world.suite_execution),
        "{executions:?}"
    );

    let cancelled = api
        .post(
            &format!("/api/v1/executions/{}/cancel", world.execution),
            &root,
            &json!({"reason": "admin stop"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text());
    assert_eq!(cancelled.json()["status"], "cancelled");
    // Alice sees the cancellation, and who did it.
    let (trace, history) = api.snapshot(&world.execution, &alice).await;
    assert_eq!(trace["status"], "cancelled");
    assert_eq!(trace["owner"], "alice");
    let last = history["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["to"], "cancelled");
    assert_eq!(last["actor"], "user:root");

    // A role under another name, or in another claim, is not admin.
    let not_admin = sign(
        Algorithm::HS256,
        &json!({"sub": "mallory", "exp": now() + 600, "roles": ["Admin", "administrator"], "admin": true}),
        SECRET.as_bytes(),
    );
    let reply = api
        .get(&format!("/api/v1/test-cases/{}", world.case), &not_admin)
        .await;
    reply.problem(StatusCode::NOT_FOUND, "test_case_not_found");
    assert!(
        api.list_ids("/api/v1/executions", &not_admin)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn error_bodies_never_leak_internals() {
    let api = Api::new();
    let alice = api.token("alice");
    let case = api.create_external_case(&alice, "case", 1).await;
    let execution = api.start_case(&alice, &case).await;
    let mut bodies = Vec::new();

    let bearer_secret = format!("Bearer {SECRET}");
    for authorization in [
        bearer_secret.as_str(),
        "Bearer x.y.z",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
    ] {
        bodies.push(with_authorization(&api, authorization.as_bytes()).await);
    }
    let expired = sign(
        Algorithm::HS256,
        &json!({"sub": "alice", "exp": 10}),
        SECRET.as_bytes(),
    );
    bodies.push(with_token(&api, &expired).await);
    bodies.push(
        api.post_raw("/api/v1/test-cases", &alice, &b"{\"name\": "[..])
            .await,
    );
    bodies.push(
        api.post_raw("/api/v1/test-cases", &alice, &b"\x00\x01\x02"[..])
            .await,
    );
    bodies.push(
        api.post("/api/v1/test-cases", &alice, &json!({"name": 1}))
            .await,
    );
    bodies.push(
        api.get(
            "/api/v1/executions?cursor=ZXhlY3V0aW9uczpleF8wMS8uLg",
            &alice,
        )
        .await,
    );
    bodies.push(api.get("/api/v1/executions?cursor=%00%00%00", &alice).await);
    bodies.push(api.get("/api/v1/executions?limit=-1", &alice).await);
    bodies.push(api.get("/api/v1/executions?since=yesterday", &alice).await);
    bodies.push(
        api.get(&format!("/api/v1/executions/{}", absent_id("ex_")), &alice)
            .await,
    );
    bodies.push(
        api.get("/api/v1/executions/ex_..%2F..%2Fetc%2Fpasswd", &alice)
            .await,
    );
    bodies.push(
        api.post(
            "/api/v1/executions/case",
            &alice,
            &json!({"test_case_id": "tc_\u{0}' OR 1=1 --"}),
        )
        .await,
    );
    bodies.push(
        api.post(
            &format!("/api/v1/executions/{execution}/steps"),
            &alice,
            &json!({"steps": [{"index": 99, "status": "passed"}]}),
        )
        .await,
    );
    bodies.push(
        api.post_raw(
            "/api/v1/test-cases",
            &alice,
            vec![b' '; runledger::api::MAX_BODY_BYTES + 1],
        )
        .await,
    );
    bodies.push(
        api.send(
            Method::PATCH,
            "/api/v1/test-cases",
            Some(&alice),
            Bytes::new(),
        )
        .await,
    );
    bodies.push(api.get("/api/v1/nope", &alice).await);
    bodies.push(
        api.post_empty(&format!("/api/v1/executions/{execution}/retry"), &alice)
            .await,
    );

    for reply in &bodies {
        assert!(
            reply.status.is_client_error(),
            "{}: {}",
            reply.what,
            reply.status
        );
        let text = reply.text();
        assert_no_leak(&reply.what, &text);
        let body = reply.json();
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.contains(" at line ") || body["code"] == "malformed_json",
            "{}: {text}",
            reply.what
        );
        for word in ["SELECT", "DynamoDB", "ConditionExpression", "arn:aws"] {
            assert!(!text.contains(word), "{}: {text}", reply.what);
        }
    }
}
