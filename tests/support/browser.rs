//! A small WebDriver client for browser tests: Debian's `chromedriver` driving headless
//! Chromium, spoken to over plain HTTP with `reqwest`.
//!
//! [`Browser::start`] starts `/usr/bin/chromedriver` on a port it picks itself (`--port=0`,
//! read back from its output, so no other process can take the port in between), waits until
//! its `/status` says ready, and opens a session of `/usr/bin/chromium` with a fresh profile.
//! Dropping the [`Browser`] ends the session (the browser quits) and kills the driver and
//! whatever is left in its process group; nothing in Drop panics.
//!
//! Every method panics with what it was doing and the driver's error: these are tests. Nothing
//! waits implicitly (the session's implicit wait is 0): [`Browser::find`] fails at once when
//! nothing matches, and whatever a page shows later is waited for with [`Browser::wait_for`]
//! or [`Browser::wait_for_text`], which poll up to a deadline.
//!
//! Missing binaries fail the test with the fix named; a browser test never skips.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL_HINT: &str = "install Debian's chromium and chromium-driver \
     (apt-get install -y chromium chromium-driver); .ci/run does";

/// How long the driver has to report its port and answer /status with ready.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long one WebDriver command may take (a session start launches the browser).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
/// Lines of the driver's output shown when it fails.
const TAIL: usize = 40;
/// The key of a web element reference in W3C WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The page's viewport in CSS pixels, set by Chromium's device emulation (ChromeDriver's
/// `mobileEmulation.deviceMetrics`) so that it is exact: a headless window's size includes
/// room for the browser's toolbar, and a window is never narrower than 500 px.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
    /// A phone: touch events, and the page's `<meta name="viewport">` decides the layout
    /// width (980 px without one), as on a real phone.
    pub mobile: bool,
}

impl Viewport {
    /// 1400x900, a desktop browser (the default).
    pub const LAPTOP: Viewport = Viewport {
        width: 1400,
        height: 900,
        mobile: false,
    };
    /// 390x844, a phone held upright.
    pub const PHONE: Viewport = Viewport {
        width: 390,
        height: 844,
        mobile: true,
    };
}

impl Default for Viewport {
    fn default() -> Self {
        Viewport::LAPTOP
    }
}

/// A cookie as the browser holds it (WebDriver's Get All Cookies).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub secure: bool,
    #[serde(default)]
    pub http_only: bool,
    /// Seconds since the epoch; None for a session cookie.
    #[serde(default)]
    pub expiry: Option<u64>,
    /// "Strict", "Lax" or "None".
    #[serde(default)]
    pub same_site: Option<String>,
}

/// An error answer from the driver: the W3C error code and its message.
#[derive(Debug, Clone)]
pub struct WdError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {}): {}", self.error, self.status, self.message)
    }
}

fn require(path: &str, what: &str) {
    if !Path::new(path).exists() {
        panic!("{what} is missing: no {path}; {INSTALL_HINT}");
    }
}

/// `chromedriver` as a child process, in a process group of its own. Dropping it kills the
/// group (the driver and any browser it left behind) with SIGKILL.
pub struct ChromeDriver {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl ChromeDriver {
    /// Starts the driver and waits until /status says ready. Panics with its output if it
    /// exits first or 30 s pass.
    pub async fn start() -> ChromeDriver {
        require(CHROMEDRIVER, "chromedriver");
        let dir = tempfile::tempdir().expect("a temp dir for chromedriver's log");
        let log = dir.path().join("chromedriver.log");
        let out = File::create(&log).expect("create chromedriver's log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .arg("--enable-chrome-logs")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER}: {e}; {INSTALL_HINT}"));
        // Owned from here on, so a panic below kills it.
        let mut driver = ChromeDriver {
            child,
            url: String::new(),
            port: 0,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + START_DEADLINE;

        // It prints "ChromeDriver was started successfully on port N." once it listens.
        driver.port = loop {
            if let Some(port) = started_on_port(&driver.log_tail(TAIL)) {
                break port;
            }
            driver.check_alive_until(deadline, "report the port it listens on");
            tokio::time::sleep(POLL).await;
        };
        driver.url = format!("http://127.0.0.1:{}", driver.port);

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let status = format!("{}/status", driver.url);
        loop {
            if let Ok(resp) = http.get(&status).send().await
                && let Ok(body) = resp.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return driver;
            }
            driver.check_alive_until(deadline, "answer /status with ready");
            tokio::time::sleep(POLL).await;
        }
    }

    fn check_alive_until(&mut self, deadline: Instant, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{CHROMEDRIVER} exited ({status}) before it would {what}; its output:\n{}",
                self.log_tail(TAIL)
            );
        }
        if Instant::now() > deadline {
            panic!(
                "{CHROMEDRIVER} did not {what} within {START_DEADLINE:?}; its output:\n{}",
                self.log_tail(TAIL)
            );
        }
    }

    /// The last `n` lines of the driver's stdout and stderr, the browser's log included
    /// (`--enable-chrome-logs`: why Chromium would not start, or crashed).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group's id is the driver's pid (process_group(0)).
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn started_on_port(output: &str) -> Option<u16> {
    output.lines().find_map(|line| {
        line.strip_prefix("ChromeDriver was started successfully on port ")?
            .trim_end_matches('.')
            .trim()
            .parse()
            .ok()
    })
}

/// The session's endpoint: everything an [`Element`] needs to send commands.
#[derive(Clone)]
struct Session {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    url: String,
}

impl Session {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        send(&self.http, method, &format!("{}{path}", self.url), body).await
    }

    /// [`Session::send`], panicking with `what` and the driver's error.
    async fn run(&self, what: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        self.send(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver: {what}: {e}"))
    }

    /// The first element matching `css` under `root` (`""` for the document, or
    /// `/element/<id>`); Ok(None) when nothing matches.
    async fn find(&self, root: &str, css: &str) -> Result<Option<Element>, WdError> {
        let body = json!({"using": "css selector", "value": css});
        match self
            .send(Method::POST, &format!("{root}/element"), Some(body))
            .await
        {
            Ok(v) => Ok(Some(self.element(&v, css))),
            Err(e) if e.error == "no such element" => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn find_all(&self, root: &str, css: &str) -> Vec<Element> {
        let body = json!({"using": "css selector", "value": css});
        let v = self
            .run(
                &format!("find all `{css}`"),
                Method::POST,
                &format!("{root}/elements"),
                Some(body),
            )
            .await;
        v.as_array()
            .unwrap_or_else(|| panic!("WebDriver: find all `{css}`: not a list: {v}"))
            .iter()
            .map(|r| self.element(r, css))
            .collect()
    }

    fn element(&self, reference: &Value, css: &str) -> Element {
        let id = reference[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("WebDriver: `{css}`: not an element reference: {reference}"));
        Element {
            session: self.clone(),
            id: id.to_string(),
            css: css.to_string(),
        }
    }
}

/// One WebDriver command: the answer's `value`, or the driver's error.
async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, WdError> {
    let mut req = http.request(method, url);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.map_err(|e| WdError {
        status: 0,
        error: "request failed".into(),
        message: format!("{url}: {e}"),
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let mut answer: Value = serde_json::from_str(&text).map_err(|_| WdError {
        status: status.as_u16(),
        error: "not JSON".into(),
        message: text.clone(),
    })?;
    let value = answer["value"].take();
    if status.is_success() {
        return Ok(value);
    }
    // The message carries the driver's build and platform after the first line.
    let message = value["message"].as_str().unwrap_or(&text);
    Err(WdError {
        status: status.as_u16(),
        error: value["error"]
            .as_str()
            .unwrap_or("unknown error")
            .to_string(),
        message: message.lines().next().unwrap_or_default().to_string(),
    })
}

/// A headless Chromium session with its own driver and profile. See the module docs.
pub struct Browser {
    session: Session,
    /// None once [`Browser::quit`] ended the session.
    session_id: Option<String>,
    pub viewport: Viewport,
    // Dropped after Drop::drop ended the session: first the driver, then the profile.
    driver: ChromeDriver,
    _profile: TempDir,
}

impl Browser {
    /// A laptop-sized browser ([`Viewport::LAPTOP`], 1400x900).
    pub async fn start() -> Browser {
        Self::start_with(Viewport::LAPTOP).await
    }

    /// A browser whose pages are laid out in `viewport`, e.g. [`Viewport::PHONE`].
    pub async fn start_with(viewport: Viewport) -> Browser {
        require(CHROMIUM, "Chromium");
        let driver = ChromeDriver::start().await;
        let profile = tempfile::tempdir().expect("a temp dir for the browser profile");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .into_iter()
        .map(String::from)
        .chain([
            format!("--user-data-dir={}", profile.path().display()),
            // Room for the emulated viewport: the window is never smaller than it.
            format!(
                "--window-size={},{}",
                viewport.width.max(500),
                viewport.height + 200
            ),
        ])
        .collect::<Vec<_>>();
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "pageLoadStrategy": "normal",
                    "timeouts": {"implicit": 0, "pageLoad": 30_000, "script": 30_000},
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": args,
                        "mobileEmulation": {"deviceMetrics": {
                            "width": viewport.width,
                            "height": viewport.height,
                            "pixelRatio": 1.0,
                            "mobile": viewport.mobile,
                            "touch": viewport.mobile,
                        }},
                    },
                }
            }
        });
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("HTTP client");
        let created = send(
            &http,
            Method::POST,
            &format!("{}/session", driver.url),
            Some(capabilities),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "WebDriver: start {CHROMIUM}: {e}\n(if Chromium is missing or broken: \
                 {INSTALL_HINT})\nchromedriver's output:\n{}",
                driver.log_tail(TAIL)
            )
        });
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("WebDriver: new session: no sessionId in {created}"))
            .to_string();
        Browser {
            session: Session {
                http,
                url: format!("{}/session/{id}", driver.url),
            },
            session_id: Some(id),
            viewport,
            driver,
            _profile: profile,
        }
    }

    /// Loads `url` and waits for its load event (scripts, `defer` ones included, have run).
    pub async fn goto(&self, url: &str) {
        self.session
            .run(
                &format!("go to {url}"),
                Method::POST,
                "/url",
                Some(json!({ "url": url })),
            )
            .await;
    }

    pub async fn current_url(&self) -> String {
        let v = self
            .session
            .run("get the current URL", Method::GET, "/url", None)
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    pub async fn title(&self) -> String {
        let v = self
            .session
            .run("get the title", Method::GET, "/title", None)
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The first element matching `css`; panics if there is none right now.
    pub async fn find(&self, css: &str) -> Element {
        self.try_find(css)
            .await
            .unwrap_or_else(|| panic!("no element matches `{css}`"))
    }

    /// The first element matching `css`, or None.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        self.session
            .find("", css)
            .await
            .unwrap_or_else(|e| panic!("WebDriver: find `{css}`: {e}"))
    }

    /// Every element matching `css`, in document order (maybe none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.session.find_all("", css).await
    }

    /// Runs `js` as a function body in the page (`return` gives the result; the arguments
    /// are `arguments[0]`, ...; pass an element with [`Element::as_arg`]).
    pub async fn execute(&self, js: &str, args: &[Value]) -> Value {
        self.session
            .run(
                &format!("execute {js:?}"),
                Method::POST,
                "/execute/sync",
                Some(json!({"script": js, "args": args})),
            )
            .await
    }

    /// Waits until an element matches `css` and its text satisfies `pred`, and returns it.
    /// Looks the element up again on every poll, so re-rendering is fine. On timeout, panics
    /// naming `css`, `what` (e.g. "to say done") and what it last saw.
    pub async fn wait_for(
        &self,
        css: &str,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.session.find("", css).await {
                Ok(Some(el)) => match el.try_text().await {
                    Ok(text) if pred(&text) => return el,
                    Ok(text) => format!("its text was {text:?}"),
                    Err(e) => format!("reading its text failed: {e}"),
                },
                Ok(None) => "no element matched".to_string(),
                // Waiting cannot fix the selector.
                Err(e) if e.error == "invalid selector" => panic!("WebDriver: find `{css}`: {e}"),
                Err(e) => format!("the lookup failed: {e}"),
            };
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for `{css}` {what}; last: {last}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an element matches `css` and its text contains `text`.
    pub async fn wait_for_text(&self, css: &str, text: &str, timeout: Duration) -> Element {
        self.wait_for(css, &format!("to contain {text:?}"), timeout, |t| {
            t.contains(text)
        })
        .await
    }

    /// Saves the viewport as a PNG at `path`, creating its directory.
    pub async fn screenshot(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let v = self
            .session
            .run("take a screenshot", Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("WebDriver: the screenshot is not base64: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Every cookie the browser holds for the current page, HttpOnly ones included.
    pub async fn cookies(&self) -> Vec<Cookie> {
        let v = self
            .session
            .run("get the cookies", Method::GET, "/cookie", None)
            .await;
        serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("WebDriver: cookies: {e} in {v}"))
    }

    /// The cookie called `name` for the current page, if the browser holds it.
    pub async fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookies().await.into_iter().find(|c| c.name == name)
    }

    /// The driver's last `n` lines of output.
    pub fn driver_log(&self, n: usize) -> String {
        self.driver.log_tail(n)
    }

    /// Ends the session and waits for the browser to quit (Drop does the same, best effort).
    pub async fn quit(mut self) {
        if let Some(id) = self.session_id.take() {
            let url = format!("{}/session/{id}", self.driver.url);
            if let Err(e) = send(&self.session.http, Method::DELETE, &url, None).await {
                panic!("WebDriver: quit: {e}");
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Blocking and runtime-free, so it works inside or outside a runtime and while one
        // shuts down. The driver answers once the browser has quit; the driver's own Drop
        // then kills whatever is left.
        if let Some(id) = self.session_id.take() {
            let _ = delete_blocking(self.driver.port, &format!("/session/{id}"));
        }
    }
}

/// `DELETE path` on the driver, reading only the start of the answer.
fn delete_blocking(port: u16, path: &str) -> std::io::Result<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "DELETE {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = [0u8; 256];
    let _ = stream.read(&mut buf)?;
    Ok(())
}

/// An element of the page, as found by CSS selector.
#[derive(Clone)]
pub struct Element {
    session: Session,
    id: String,
    /// The selector it was found by, for messages.
    pub css: String,
}

impl Element {
    fn path(&self, tail: &str) -> String {
        format!("/element/{}{tail}", self.id)
    }

    /// Scrolls it into view and clicks its centre; panics if something covers it.
    pub async fn click(&self) {
        self.session
            .run(
                &format!("click `{}`", self.css),
                Method::POST,
                &self.path("/click"),
                Some(json!({})),
            )
            .await;
    }

    /// Types `text` into it (focusing it first), after what it already holds.
    pub async fn send_keys(&self, text: &str) {
        self.session
            .run(
                &format!("type into `{}`", self.css),
                Method::POST,
                &self.path("/value"),
                Some(json!({ "text": text })),
            )
            .await;
    }

    /// Empties an input or textarea.
    pub async fn clear(&self) {
        self.session
            .run(
                &format!("clear `{}`", self.css),
                Method::POST,
                &self.path("/clear"),
                Some(json!({})),
            )
            .await;
    }

    /// Its rendered text (as a person sees it: hidden parts left out).
    pub async fn text(&self) -> String {
        self.try_text()
            .await
            .unwrap_or_else(|e| panic!("WebDriver: text of `{}`: {e}", self.css))
    }

    async fn try_text(&self) -> Result<String, WdError> {
        let v = self
            .session
            .send(Method::GET, &self.path("/text"), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The attribute `name` as written in the markup (or set since), None if absent.
    pub async fn attr(&self, name: &str) -> Option<String> {
        let v = self
            .session
            .run(
                &format!("attribute {name} of `{}`", self.css),
                Method::GET,
                &self.path(&format!("/attribute/{name}")),
                None,
            )
            .await;
        v.as_str().map(String::from)
    }

    /// The DOM property `name` (e.g. an input's current `value`, `checked`).
    pub async fn prop(&self, name: &str) -> Value {
        self.session
            .run(
                &format!("property {name} of `{}`", self.css),
                Method::GET,
                &self.path(&format!("/property/{name}")),
                None,
            )
            .await
    }

    /// The first element matching `css` inside this one; panics if there is none.
    pub async fn find(&self, css: &str) -> Element {
        self.session
            .find(&self.path(""), css)
            .await
            .unwrap_or_else(|e| panic!("WebDriver: find `{css}` in `{}`: {e}", self.css))
            .unwrap_or_else(|| panic!("no element matches `{css}` in `{}`", self.css))
    }

    /// Every element matching `css` inside this one.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.session.find_all(&self.path(""), css).await
    }

    /// This element as an argument to [`Browser::execute`].
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}
