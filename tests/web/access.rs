//! Who may do what over HTTP, and requests made from other sites.

use super::*;

#[tokio::test]
async fn auth_rights_and_cross_site_requests() {
    let s = TestServer::start(|cfg| {
        cfg.token = Some(ferry::secret::Secret::new("s3cret-token"));
        cfg.anonymous = ferry::access::Rights {
            read: true,
            chat: true,
            ..Default::default()
        };
    })
    .await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    let c = http();
    // Anonymous: reads, but writing needs the token (401 with a challenge).
    assert_eq!(
        c.get(url(&s, "/a.txt")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let r = c.put(url(&s, "/b.txt")).body("b").send().await.unwrap();
    assert!(challenged(&r), "{}", r.status());
    // The page's own requests get no browser dialog.
    let r = c
        .put(url(&s, "/b.txt"))
        .header("X-Ferry", "1")
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!r.headers().contains_key(header::WWW_AUTHENTICATE));
    // Bearer, Basic; a wrong token is 401.
    let r = c
        .put(url(&s, "/b.txt"))
        .bearer_auth("s3cret-token")
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .put(url(&s, "/c.txt"))
        .basic_auth("anyone", Some("s3cret-token"))
        .body("c")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .put(url(&s, "/d.txt"))
        .bearer_auth("wrong")
        .body("d")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!s.path("d.txt").exists());
    // Exec is never an HTTP right: nothing to test but that it is absent.
    let who: serde_json::Value = c
        .get(url(&s, "/.ferry/whoami"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["permissions"]["upload"], true);
    assert_eq!(who["permissions"]["exec"], false);

    // Login: needs the page's header; sets an HttpOnly, SameSite=Strict cookie.
    let r = c
        .post(url(&s, "/.ferry/login"))
        .body("token=s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(url(&s, "/.ferry/login"))
        .header("X-Ferry", "1")
        .body("token=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .post(url(&s, "/.ferry/login"))
        .header("X-Ferry", "1")
        .body("token=s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let set = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let r = c
        .put(url(&s, "/e.txt"))
        .header(header::COOKIE, &cookie)
        .body("e")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Cross-site: another Origin, or a cross-site fetch, changes nothing.
    for (name, value) in [
        ("Origin", "http://evil.example".to_string()),
        ("Origin", "null".to_string()),
        ("Sec-Fetch-Site", "cross-site".to_string()),
    ] {
        let r = c
            .delete(url(&s, "/e.txt"))
            .header(header::COOKIE, &cookie)
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    assert!(s.path("e.txt").exists());
    let r = c
        .delete(url(&s, "/e.txt"))
        .header(header::COOKIE, &cookie)
        .header("Origin", format!("http://{}", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Logout ends the session.
    let r = c
        .post(url(&s, "/.ferry/logout"))
        .header("X-Ferry", "1")
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c
        .put(url(&s, "/f.txt"))
        .header(header::COOKIE, &cookie)
        .body("f")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A WebSocket from another site's page is refused.
    let ans = raw(
        &s,
        b"GET /.ferry/chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Origin: http://evil.example\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ans), 403, "{ans}");
    s.stop().await;
}
