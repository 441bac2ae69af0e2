//! `troupe logs ID [-f]`: an instance's output for people (or as JSON lines), followed live
//! through the events stream.

use serde_json::Value;

use super::Client;

/// Tool results are cut to this many lines: the answer is what people read.
const TOOL_RESULT_LINES: usize = 8;

pub async fn run(
    client: &Client,
    id: &str,
    follow: bool,
    lines: u32,
    json: bool,
) -> anyhow::Result<()> {
    let inst = client.instance(id).await?;
    // Open the stream first: what is written while the history loads arrives on it, and
    // chunk ids drop what both carry.
    let mut events = match follow {
        true => Some(
            client
                .events(&format!("instance_id={id}&kinds=output,instance"))
                .await?,
        ),
        false => None,
    };
    let history = client.output(id, lines.clamp(1, 1000)).await?;
    let mut shown = 0;
    for chunk in history["chunks"].as_array().into_iter().flatten() {
        print_chunk(chunk, json);
        shown = shown.max(chunk["id"].as_i64().unwrap_or(0));
    }
    let Some(events) = events.as_mut() else {
        return Ok(());
    };
    if ended(inst["state"].as_str()) {
        eprintln!("{id} is {}", inst["state"].as_str().unwrap_or("ended"));
        return Ok(());
    }
    while let Some(event) = events.next().await? {
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
            continue;
        };
        match event.event.as_str() {
            "output" if data["id"].as_i64().unwrap_or(0) > shown => {
                shown = data["id"].as_i64().unwrap_or(shown);
                print_chunk(&data, json);
            }
            "instance" => {
                let state = data["state"].as_str();
                if !json {
                    eprintln!("── {id} is {}", state.unwrap_or("?"));
                }
                if ended(state) {
                    return Ok(());
                }
            }
            _ => {}
        }
    }
    anyhow::bail!(
        "the server ended the event stream (stopped?); `troupe logs -f {id}` again follows on"
    )
}

fn ended(state: Option<&str>) -> bool {
    matches!(state, Some("terminated" | "failed"))
}

fn print_chunk(chunk: &Value, json: bool) {
    if json {
        println!("{chunk}");
    } else {
        print!("{}", render(chunk));
    }
}

/// One chunk as lines for a terminal, its kind shown by a leading mark.
pub fn render(chunk: &Value) -> String {
    let content = chunk["content"].as_str().unwrap_or("").trim_end();
    let mark = |prefix: &str, text: &str| -> String {
        text.lines()
            .map(|l| format!("{prefix}{l}\n"))
            .collect::<String>()
    };
    match chunk["source"].as_str().unwrap_or("") {
        "prompt" => mark("> ", content),
        "assistant" => format!("{content}\n"),
        "tool_use" => mark("  ⚙ ", content),
        "tool_result" => {
            let all: Vec<&str> = content.lines().collect();
            let mut out = mark("  ↳ ", &all[..all.len().min(TOOL_RESULT_LINES)].join("\n"));
            if all.len() > TOOL_RESULT_LINES {
                out.push_str(&format!(
                    "  ↳ … {} more lines\n",
                    all.len() - TOOL_RESULT_LINES
                ));
            }
            out
        }
        "interrupt" => format!("✗ interrupted{}\n", line_after(content)),
        other => mark(&format!("[{other}] "), content),
    }
}

fn line_after(content: &str) -> String {
    match content.lines().next() {
        Some(l) if !l.is_empty() => format!(": {l}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn chunks_read_as_a_conversation() {
        assert_eq!(
            render(&json!({"source": "prompt", "content": "add tests\nplease"})),
            "> add tests\n> please\n"
        );
        assert_eq!(
            render(&json!({"source": "assistant", "content": "Done.\n"})),
            "Done.\n"
        );
        let long: String = (1..=12).map(|n| format!("line {n}\n")).collect();
        let shown = render(&json!({"source": "tool_result", "content": long}));
        assert!(shown.starts_with("  ↳ line 1\n"));
        assert!(shown.ends_with("  ↳ … 4 more lines\n"), "{shown}");
        assert_eq!(
            render(&json!({"source": "interrupt", "content": ""})),
            "✗ interrupted\n"
        );
    }
}
