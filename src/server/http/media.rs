//! The media type a served file is given.

/// Text a browser would download under its registered type (Markdown,
/// source code, configuration, logs): served as plain text, so that it
/// shows, as on GitHub's raw view and in dufs.
const PLAIN_TEXT: &[&str] = &[
    "md",
    "markdown",
    "rst",
    "adoc",
    "rs",
    "py",
    "sh",
    "bash",
    "zsh",
    "fish",
    "toml",
    "yaml",
    "yml",
    "ini",
    "cfg",
    "conf",
    "log",
    "c",
    "h",
    "cc",
    "cpp",
    "hpp",
    "go",
    "java",
    "kt",
    "rb",
    "pl",
    "lua",
    "sql",
    "diff",
    "patch",
    "tex",
    "csv",
    "tsv",
    "properties",
    "gradle",
    "swift",
    "scala",
    "hs",
    "ex",
    "exs",
    "erl",
    "clj",
    "r",
    "jsx",
    "tsx",
    "vue",
    "svelte",
    "mk",
    "cmake",
    "nix",
    "lock",
    "gitignore",
    "env",
];

/// Names without an extension that are text.
const PLAIN_NAMES: &[&str] = &[
    "Makefile",
    "Dockerfile",
    "LICENSE",
    "README",
    "CHANGELOG",
    "AUTHORS",
    "COPYING",
    "NOTICE",
    "Containerfile",
    "Vagrantfile",
    "Procfile",
];

/// The media type a file is served with.
pub(super) fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let plain = match &ext {
        Some(e) => PLAIN_TEXT.contains(&e.as_str()),
        None => PLAIN_NAMES.contains(&name),
    };
    if plain {
        return "text/plain";
    }
    mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream")
}
