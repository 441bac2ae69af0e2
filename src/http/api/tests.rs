/// The (method, path) pairs `routes` declares, read from this file's source.
fn declared() -> Vec<(String, String)> {
    let src = include_str!("../api.rs");
    let start = src.find("pub fn routes()").unwrap();
    let end = start + src[start..].find("\n}\n").unwrap();
    let mut out = Vec::new();
    for chunk in src[start..end].split(".route(").skip(1) {
        let mut depth = 1;
        let close = chunk
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .unwrap();
        let body = &chunk[..close];
        let path = body.split('"').nth(1).unwrap().to_string();
        for method in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{method}(");
            let named = body.match_indices(&call).any(|(i, _)| {
                i == 0 || {
                    let before = body.as_bytes()[i - 1];
                    !(before.is_ascii_alphanumeric() || before == b'_')
                }
            });
            if named {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn the_route_table_is_every_route() {
    let mut declared = declared();
    let mut table: Vec<(String, String)> = super::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    declared.sort();
    table.sort();
    assert_eq!(declared.len(), 45, "{declared:?}");
    assert_eq!(declared, table);
}
