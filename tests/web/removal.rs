//! A folder's removal over HTTP: whole or not at all, and only as the
//! request's conditions allow.

use super::*;

/// A folder's DELETE honours its conditions: one that does not hold
/// removes nothing; without one, the folder goes whole.
#[tokio::test]
async fn a_folder_delete_weighs_its_conditions() {
    let s = TestServer::start(|_| {}).await;
    std::fs::create_dir_all(s.path("f/sub")).unwrap();
    std::fs::write(s.path("f/sub/a.txt"), "a").unwrap();
    let c = http();
    let r = c
        .delete(url(&s, "/f/"))
        .header("If-Match", "\"not-its-tag\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert!(s.path("f/sub/a.txt").exists());
    // A folder goes whole or not at all: a depth short of that is refused.
    let r = c
        .delete(url(&s, "/f/"))
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(s.path("f/sub/a.txt").exists());
    let r = c.delete(url(&s, "/f/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!s.path("f").exists());
    let r = c.delete(url(&s, "/f/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}
