//! The few W3C WebDriver commands the web page's tests send to chromedriver, over the HTTP
//! client jcsql already builds with. (A WebDriver crate was tried: its dependencies turned on
//! features of crates DataFusion shares, so `tests/run` rebuilt all of DataFusion after
//! `cargo run -- demo`, 6 minutes instead of 1.)

use std::time::Duration;

use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port, and one headless Chromium session through it.
pub struct Browser {
    driver: std::process::Child,
    http: reqwest::Client,
    session: String,
}

#[derive(Debug, Clone)]
pub struct Element {
    id: String,
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| std::path::Path::new(d).join(name)).find(|p| p.is_file())
}

impl Browser {
    pub async fn start() -> Browser {
        let driver_path =
            which("chromedriver").expect("chromedriver is on PATH (tests/run installs Debian's chromium-driver)");
        let chromium = which("chromium").expect("chromium is on PATH (tests/run installs Debian's chromium)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let driver = std::process::Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"],
            },
        }}});
        let mut last = String::new();
        for _ in 0..100 {
            match post_json(http.post(format!("http://127.0.0.1:{port}/session")), &capabilities).send().await {
                Ok(r) => {
                    let body = json_of(r).await;
                    let Some(session) = body["value"]["sessionId"].as_str() else {
                        panic!("chromedriver did not start a session: {body}");
                    };
                    let mut b = Browser { driver, http, session: format!("http://127.0.0.1:{port}/session/{session}") };
                    // Finding an element waits up to 5 s for it (a page still loading after a POST).
                    b.command("POST", "/timeouts", json!({"implicit": 5000})).await;
                    return b;
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(driver);
        panic!("chromedriver did not answer: {last}");
    }

    async fn command(&mut self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => post_json(self.http.post(url), &body),
        };
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let ok = response.status().is_success();
        let value = json_of(response).await;
        assert!(ok, "{method} {path}: {value}");
        value["value"].clone()
    }

    pub async fn goto(&mut self, url: &str) {
        self.command("POST", "/url", json!({"url": url})).await;
    }

    /// The current page's path and query (`/boards/x?page=2`).
    pub async fn path(&mut self) -> String {
        let url = self.command("GET", "/url", Value::Null).await;
        let url = url.as_str().unwrap_or_default();
        let after_host = url.splitn(4, '/').nth(3).unwrap_or_default();
        format!("/{after_host}")
    }

    pub async fn back(&mut self) {
        self.command("POST", "/back", json!({})).await;
    }

    pub async fn refresh(&mut self) {
        self.command("POST", "/refresh", json!({})).await;
    }

    pub async fn find(&mut self, css: &str) -> Element {
        let v = self.command("POST", "/element", json!({"using": "css selector", "value": css})).await;
        Element { id: v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string() }
    }

    pub async fn find_all(&mut self, css: &str) -> Vec<Element> {
        self.find_all_in(None, css).await
    }

    pub async fn find_all_in(&mut self, parent: Option<&Element>, css: &str) -> Vec<Element> {
        let path = match parent {
            Some(p) => format!("/element/{}/elements", p.id),
            None => "/elements".to_string(),
        };
        let v = self.command("POST", &path, json!({"using": "css selector", "value": css})).await;
        v.as_array()
            .map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str()).map(|id| Element { id: id.to_string() }).collect())
            .unwrap_or_default()
    }

    pub async fn text_of(&mut self, e: &Element) -> String {
        self.command("GET", &format!("/element/{}/text", e.id), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn text(&mut self, css: &str) -> String {
        let e = self.find(css).await;
        self.text_of(&e).await
    }

    pub async fn click(&mut self, css: &str) {
        let e = self.find(css).await;
        self.command("POST", &format!("/element/{}/click", e.id), json!({})).await;
    }

    pub async fn type_into(&mut self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.command("POST", &format!("/element/{}/value", e.id), json!({"text": text})).await;
    }

    pub async fn attribute(&mut self, e: &Element, name: &str) -> Option<String> {
        let v = self.command("GET", &format!("/element/{}/attribute/{name}", e.id), Value::Null).await;
        v.as_str().map(str::to_string)
    }

    pub async fn property(&mut self, e: &Element, name: &str) -> Option<String> {
        let v = self.command("GET", &format!("/element/{}/property/{name}", e.id), Value::Null).await;
        v.as_str().map(str::to_string)
    }

    /// The page as a PNG.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let v = self.command("GET", "/screenshot", Value::Null).await;
        base64_decode(v.as_str().unwrap_or_default())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn post_json(request: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    request.header("content-type", "application/json").body(body.to_string())
}

async fn json_of(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let Some(v) = ALPHABET.iter().position(|a| *a == c) else { continue };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
