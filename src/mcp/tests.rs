use super::*;

#[test]
fn the_read_only_tools_are_tools() {
    let names = tool_names();
    for t in READ_ONLY_TOOLS {
        assert!(names.contains(t), "{t} is not one of troupe's tools");
    }
}

#[test]
fn every_tool_schema_is_portable() {
    let mut problems = Vec::new();
    for tool in TOOLS.list_all() {
        let input = serde_json::Value::Object(tool.input_schema.as_ref().clone());
        for p in schema::portability_problems(&input) {
            problems.push(format!("{} input {p}", tool.name));
        }
        if let Some(out) = &tool.output_schema {
            let out = serde_json::Value::Object(out.as_ref().clone());
            for p in schema::portability_problems(&out) {
                problems.push(format!("{} output {p}", tool.name));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let text = serde_json::to_string(
        &TOOLS
            .list_all()
            .iter()
            .map(|t| (t.input_schema.clone(), t.output_schema.clone()))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for bad in ["\"uint", "\"int64", "\"int32", "\"double", "\"float"] {
        assert!(!text.contains(bad), "{bad} in the tool schemas");
    }
}

#[test]
fn the_persons_claude_code_gets_waits_it_bears() {
    let cc = |v: &str| Implementation::new("claude-code", v);
    let capped = Some(Duration::from_secs(100));
    assert_eq!(wait_cap(None, true, Some(&cc("2.1.328"))), capped);
    assert_eq!(wait_cap(None, true, Some(&cc("2.1.212"))), capped);
    assert_eq!(
        wait_cap(None, true, Some(&cc("2.1.197"))),
        None,
        "no background yet"
    );
    assert_eq!(
        wait_cap(None, false, Some(&cc("2.1.328"))),
        None,
        "troupe's own CLIs"
    );
    assert_eq!(
        wait_cap(
            None,
            true,
            Some(&Implementation::new("another-client", "1.0.0"))
        ),
        None
    );
    assert_eq!(wait_cap(None, true, None), None);
    let set = Some(Duration::from_secs(7));
    assert_eq!(wait_cap(set, true, None), set, "--person-wait rules");
    assert_eq!(wait_cap(set, false, None), None);
    let text = still_working("msg-1", Duration::from_secs(100), Duration::from_secs(300));
    assert!(text.starts_with("still working after 100s"), "{text}");
    assert!(
        text.contains("get_message with message_id \"msg-1\" and wait_seconds 100"),
        "{text}"
    );
    assert!(
        text.ends_with("(200s remain of the wait you asked for)"),
        "{text}"
    );
}

#[test]
fn waits_are_bounded_and_errors_name_the_field() {
    let d = Duration::from_secs(300);
    assert_eq!(wait_seconds("timeout_seconds", None, d), Ok(d));
    assert_eq!(
        wait_seconds("timeout_seconds", Some(5), d),
        Ok(Duration::from_secs(5))
    );
    let e = wait_seconds("timeout_seconds", Some(1 << 63), d).unwrap_err();
    assert!(
        e.starts_with("timeout_seconds is 9223372036854775808"),
        "{e}"
    );
    let e = wait_seconds("wait_seconds", Some(0), d).unwrap_err();
    assert!(e.starts_with("wait_seconds must be at least 1"), "{e}");
}
