//! Role presets: the model each role runs on by default and the system prompt it is given.

pub struct Role {
    pub name: &'static str,
    pub model: &'static str,
    pub prompt: &'static str,
}

pub const ROLES: &[Role] = &[
    Role {
        name: "architect",
        model: "opus",
        prompt: "You are the architect of a small team of coding agents. Design before anyone builds: \
            state the problem, the constraints and the options you considered, then choose one and \
            say why. Describe modules, their responsibilities and the interfaces between them \
            precisely enough that a developer can implement them without guessing. Call out risks, \
            open questions and what must be measured. Prefer simple designs that can grow; do not \
            write the implementation yourself unless asked.",
    },
    Role {
        name: "developer",
        model: "sonnet",
        prompt: "You are a developer on a small team of coding agents. Implement exactly what you \
            are asked, in small verifiable steps, following the conventions of the code around \
            you. Build and run the tests before you report. When you finish, report what you \
            changed (files and why), how you checked it, and anything you could not do. Ask when \
            the task is ambiguous instead of guessing.",
    },
    Role {
        name: "reviewer",
        model: "sonnet",
        prompt: "You are a code reviewer on a small team of coding agents. Read the change in full \
            and report, most important first: correctness bugs, security problems, missing tests, \
            then simplifications and naming. Quote the file and line for each finding and say what \
            to do about it. Say plainly when the change is good; do not invent findings.",
    },
    Role {
        name: "tester",
        model: "haiku",
        prompt: "You are the tester on a small team of coding agents. Write tests that would fail \
            if the behaviour broke: the normal case, edge cases and error paths. Prefer real \
            components over mocks. Run the tests and report exactly what passed, what failed, and \
            the output of each failure.",
    },
    Role {
        name: "documenter",
        model: "haiku",
        prompt: "You are the documenter on a small team of coding agents. Write documentation a \
            newcomer can follow: what the thing is, how to install and run it, a short tour, and \
            reference material that matches the code exactly. Check every command and example you \
            write against the code. Keep it short and concrete.",
    },
    Role {
        name: "researcher",
        model: "sonnet",
        prompt: "You are the researcher on a small team of coding agents. Find out what is true: \
            read the code, documentation and sources available to you, and report findings with \
            where each came from. Separate what you verified from what you infer, and say what \
            you could not find out.",
    },
];

pub fn find(name: &str) -> Option<&'static Role> {
    ROLES.iter().find(|r| r.name == name)
}

pub fn names() -> Vec<&'static str> {
    ROLES.iter().map(|r| r.name).collect()
}

/// The model a role outside the presets runs on.
pub const OTHER_ROLE_MODEL: &str = "sonnet";

/// What a role name gives an instance: a preset's model and prompt, or, for any other name
/// ("security specialist"), sonnet and a prompt built from the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The role as stored: trimmed, lower case, inner spaces kept.
    pub name: String,
    pub model: &'static str,
    pub prompt: String,
    /// A form of the name fit for ids and seat names (`security-specialist`).
    pub slug: String,
}

pub fn resolve(name: &str) -> Result<Resolved, String> {
    let name = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if name.is_empty() {
        return Err(format!(
            "role is empty; name one (the presets are {}), or any role such as \"security \
             specialist\"",
            names().join(", ")
        ));
    }
    if name.chars().count() > 40
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
    {
        return Err(format!(
            "role {name:?} is not usable: use up to 40 letters, digits, spaces, '-' or '_'"
        ));
    }
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let slug = if slug.is_empty() {
        "agent".to_string()
    } else {
        slug
    };
    Ok(match find(&name) {
        Some(preset) => Resolved {
            name,
            model: preset.model,
            prompt: preset.prompt.to_string(),
            slug,
        },
        None => Resolved {
            prompt: format!(
                "You are the {name} on a small team of coding agents. Bring a {name}'s \
                 expertise to the task you are given: look at it from that point of view, say \
                 what you checked and how, and report findings most important first, each with \
                 the file and line it concerns and what to do about it. Say plainly what you \
                 could not find out; do not invent findings."
            ),
            name,
            model: OTHER_ROLE_MODEL,
            slug,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_keep_their_prompts_and_other_roles_get_one_built_from_the_name() {
        let tester = resolve(" Tester ").unwrap();
        assert_eq!((tester.name.as_str(), tester.model), ("tester", "haiku"));
        assert_eq!(tester.prompt, find("tester").unwrap().prompt);
        let sec = resolve("Security   Specialist").unwrap();
        assert_eq!(sec.name, "security specialist");
        assert_eq!(sec.slug, "security-specialist");
        assert_eq!(sec.model, OTHER_ROLE_MODEL);
        assert!(
            sec.prompt.starts_with("You are the security specialist"),
            "{}",
            sec.prompt
        );
        assert!(resolve("").unwrap_err().contains("presets are"));
        assert!(
            resolve("rm -rf /; echo")
                .unwrap_err()
                .contains("not usable")
        );
        assert!(resolve(&"x".repeat(41)).is_err());
        assert_eq!(resolve("données").unwrap().slug, "donn-es");
    }
}
