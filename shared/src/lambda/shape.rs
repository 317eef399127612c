//! Telling invocation payloads apart by their shape alone, before any of them is decoded.

use serde_json::Value;

/// What an invocation payload is, judged by its shape alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventShape {
    /// API Gateway HTTP API, payload format 2.0; Lambda Function URLs send the same shape.
    ApiGatewayV2,
    /// API Gateway REST API (payload format 1.0).
    ApiGatewayV1,
    /// An SQS batch (`Records[].eventSource == "aws:sqs"`).
    Sqs,
    /// A batch of DynamoDB stream records (`Records[].eventSource == "aws:dynamodb"`).
    DynamoDbStream,
    /// An EventBridge event (`source`, `detail-type`, `detail`).
    EventBridge,
    /// An EventBridge Scheduler payload starting a test case or suite.
    ScheduledStart,
    /// Anything else, described without its values (they may hold secrets).
    Unknown(String),
}

impl EventShape {
    /// What arrived, for error messages and logs.
    pub fn describe(&self) -> String {
        match self {
            EventShape::ApiGatewayV2 => "an API Gateway HTTP API (or Function URL) request".into(),
            EventShape::ApiGatewayV1 => "an API Gateway REST API request".into(),
            EventShape::Sqs => "an SQS batch".into(),
            EventShape::DynamoDbStream => "a batch of DynamoDB stream records".into(),
            EventShape::EventBridge => "an EventBridge event".into(),
            EventShape::ScheduledStart => "a scheduled start".into(),
            EventShape::Unknown(what) => what.clone(),
        }
    }
}

/// Tells the payload kinds apart by the fields only they have.
pub fn classify(event: &Value) -> EventShape {
    let Some(object) = event.as_object() else {
        return EventShape::Unknown(format!("a JSON {}, not an object", json_kind(event)));
    };
    if let Some(records) = object.get("Records") {
        let sources: Vec<&str> = records
            .as_array()
            .map(|records| {
                records
                    .iter()
                    .map(|r| {
                        r.get("eventSource")
                            .or_else(|| r.get("EventSource"))
                            .and_then(Value::as_str)
                            .unwrap_or("no eventSource")
                    })
                    .collect()
            })
            .unwrap_or_default();
        return match sources.first() {
            Some(&"aws:sqs") if sources.iter().all(|s| *s == "aws:sqs") => EventShape::Sqs,
            Some(&"aws:dynamodb") if sources.iter().all(|s| *s == "aws:dynamodb") => {
                EventShape::DynamoDbStream
            }
            Some(first) => EventShape::Unknown(format!("a batch of records from {first:?}")),
            None => EventShape::Unknown("an empty or malformed batch of records".into()),
        };
    }
    if let Some(context) = object.get("requestContext").and_then(Value::as_object) {
        if context.contains_key("elb") {
            return EventShape::Unknown("an Application Load Balancer request".into());
        }
        if object.get("version").and_then(Value::as_str) == Some("2.0")
            || context.get("http").is_some_and(Value::is_object)
        {
            return EventShape::ApiGatewayV2;
        }
        if object.contains_key("httpMethod") {
            return EventShape::ApiGatewayV1;
        }
        return EventShape::Unknown("a request of an unknown API Gateway format".into());
    }
    if object.contains_key("detail-type") && object.contains_key("source") {
        return EventShape::EventBridge;
    }
    if object.contains_key("test_suite_id") || object.contains_key("test_case_id") {
        return EventShape::ScheduledStart;
    }
    let mut keys: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
    if object.len() > keys.len() {
        keys.push("...");
    }
    EventShape::Unknown(format!("an object with the fields [{}]", keys.join(", ")))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn http_api_and_function_url_payloads_are_v2() {
        let http_api = json!({
            "version": "2.0", "rawPath": "/api/v1/health",
            "requestContext": {"http": {"method": "GET"}, "stage": "$default"}
        });
        assert_eq!(classify(&http_api), EventShape::ApiGatewayV2);
        // A Function URL request: v2-shaped, with a lambda-url domain.
        let function_url = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/api/v1/health",
            "requestContext": {"domainName": "abc.lambda-url.us-east-1.on.aws",
                               "http": {"method": "GET"}}
        });
        assert_eq!(classify(&function_url), EventShape::ApiGatewayV2);
        // No version field, but the v2 request context.
        let unversioned = json!({"requestContext": {"http": {"method": "POST"}}});
        assert_eq!(classify(&unversioned), EventShape::ApiGatewayV2);
    }

    #[test]
    fn rest_payloads_are_v1() {
        let rest = json!({
            "resource": "/{proxy+}", "path": "/api/v1/health", "httpMethod": "GET",
            "requestContext": {"stage": "prod", "httpMethod": "GET"}
        });
        assert_eq!(classify(&rest), EventShape::ApiGatewayV1);
    }

    #[test]
    fn load_balancer_and_other_request_formats_are_unknown() {
        let alb = json!({"httpMethod": "GET", "path": "/", "requestContext": {"elb": {}}});
        assert!(matches!(classify(&alb), EventShape::Unknown(d) if d.contains("Load Balancer")));
        let odd = json!({"requestContext": {"eventType": "CONNECT"}});
        assert!(matches!(classify(&odd), EventShape::Unknown(_)));
    }

    #[test]
    fn sqs_batches_need_every_record_from_sqs() {
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"},
                                     {"eventSource": "aws:sqs", "body": "{}"}]});
        assert_eq!(classify(&sqs), EventShape::Sqs);
        let sns = json!({"Records": [{"EventSource": "aws:sns"}]});
        assert!(matches!(classify(&sns), EventShape::Unknown(d) if d.contains("aws:sns")));
        let mixed = json!({"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "aws:s3"}]});
        assert!(matches!(classify(&mixed), EventShape::Unknown(_)));
        let mixed =
            json!({"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "aws:dynamodb"}]});
        assert!(matches!(classify(&mixed), EventShape::Unknown(_)));
        assert!(matches!(
            classify(&json!({"Records": []})),
            EventShape::Unknown(_)
        ));
        assert!(matches!(
            classify(&json!({"Records": "x"})),
            EventShape::Unknown(_)
        ));
    }

    #[test]
    fn dynamodb_stream_batches_need_every_record_from_dynamodb() {
        let stream = json!({"Records": [
            {"eventSource": "aws:dynamodb", "eventName": "INSERT", "dynamodb": {}},
            {"eventSource": "aws:dynamodb", "eventName": "MODIFY", "dynamodb": {}}
        ]});
        assert_eq!(classify(&stream), EventShape::DynamoDbStream);
        let kinesis = json!({"Records": [{"eventSource": "aws:kinesis"}]});
        assert!(matches!(classify(&kinesis), EventShape::Unknown(d) if d.contains("aws:kinesis")));
    }

    #[test]
    fn eventbridge_events_have_source_and_detail_type() {
        let finished = json!({"source": "runledger", "detail-type": "Execution Finished",
                              "detail": {}});
        assert_eq!(classify(&finished), EventShape::EventBridge);
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event",
                               "detail": {}});
        assert_eq!(classify(&scheduled), EventShape::EventBridge);
        let half = json!({"source": "runledger"});
        assert!(matches!(classify(&half), EventShape::Unknown(_)));
    }

    #[test]
    fn scheduler_payloads_name_a_suite_or_a_case() {
        let suite = json!({"test_suite_id": "ts_1", "owner": "alice"});
        assert_eq!(classify(&suite), EventShape::ScheduledStart);
        let case = json!({"test_case_id": "tc_1"});
        assert_eq!(classify(&case), EventShape::ScheduledStart);
    }

    #[test]
    fn anything_else_is_described_without_its_values() {
        let secret = json!({"password": "hunter2", "token": "abc"});
        let EventShape::Unknown(description) = classify(&secret) else {
            panic!("unknown expected");
        };
        assert!(description.contains("password"), "{description}");
        assert!(!description.contains("hunter2"), "{description}");
        for (value, kind) in [
            (json!("text"), "string"),
            (json!([1, 2]), "array"),
            (Value::Null, "null"),
            (json!(3), "number"),
        ] {
            assert!(matches!(classify(&value), EventShape::Unknown(d) if d.contains(kind)));
        }
        let wide: serde_json::Map<String, Value> =
            (0..20).map(|i| (format!("f{i:02}"), json!(i))).collect();
        let EventShape::Unknown(description) = classify(&Value::Object(wide)) else {
            panic!("unknown expected");
        };
        assert!(description.ends_with("...]"), "{description}");
    }
}
