mod common;
use common::Api;
use serde_json::json;
#[tokio::test]
async fn probe() {
    let api = Api::new();
    let alice = api.token("alice");
    let r = api.post("/api/v1/test-cases", &alice, &json!(["positional", null, [], {}, null, [{"name":"s","action":"external"}]])).await;
    println!("ARRAY CASE {} {}", r.status, r.text());
    let case = api.create_external_case(&alice, "c", 1).await;
    let r = api.post("/api/v1/executions/case", &alice, &json!([case])).await;
    println!("ARRAY START {} {}", r.status, r.text());
    let r = api.post("/api/v1/executions/case", &alice, &json!({"test_case_id": case, "config": [ "high" ]})).await;
    println!("ARRAY CONFIG {} {}", r.status, r.text());
    let r = api.post_raw("/api/v1/test-cases", &alice, &b"{\"name\": \"\xff\xfe\", \"steps\": []}"[..]).await;
    println!("UTF8 {} {}", r.status, r.text());
    let r = api.post_raw("/api/v1/test-cases", &alice, &b"{\"name\":\"a\",\"name\":\"b\",\"steps\":[{\"name\":\"s\",\"action\":\"external\"}]}"[..]).await;
    println!("DUPKEY {} {}", r.status, r.text());
    let r = api.post(&format!("/api/v1/executions/{}/cancel", "ex_01ARZ3NDEKTSV4RRFFQ69G5FAV"), &alice, &json!([])).await;
    println!("CANCEL ARR {} {}", r.status, r.text());
}
