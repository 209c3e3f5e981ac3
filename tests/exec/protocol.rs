//! The exec request on the wire: disconnects, cancels, limits and abuse.

use super::*;

#[tokio::test]
async fn a_client_disconnect_stops_the_job() {
    let s = exec_server(|_| {}).await;
    let mut conn = raw(&s).await;
    let pgid = start_raw(&mut conn, "echo $$; sleep 300 & sleep 300", false).await;
    assert!(!group_members(pgid).is_empty());
    drop(conn);
    assert_group_gone(pgid, 10).await;
}

#[tokio::test]
async fn server_shutdown_stops_the_job_and_says_so() {
    let s = exec_server(|_| {}).await;
    let mut conn = raw(&s).await;
    let pgid = start_raw(&mut conn, "echo $$; sleep 300", false).await;
    let stopping = tokio::spawn(s.stop());
    let head = conn.next_head().await.unwrap();
    assert_eq!(head.kind, Kind::Error);
    let e: ferry::wire::messages::ErrorReply = serde_json::from_slice(&head.header).unwrap();
    assert_eq!(e.code, ErrorCode::ShuttingDown);
    stopping.await.unwrap();
    assert_group_gone(pgid, 5).await;
}

#[tokio::test]
async fn cancel_gets_through_even_behind_unread_stdin() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    // The command never reads its stdin, and the client has endless input:
    // the window keeps the server's buffer bounded and the cancel moving.
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = c
        .exec(
            &sh("sleep 300"),
            Some(tokio::io::repeat(b'x')),
            &mut out,
            &mut err,
            &cancel,
        )
        .await
        .unwrap();
    assert!(r.cancelled);
    assert_eq!(r.status(), 130);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection is still in step.
    assert_eq!(run(&mut c, &sh("echo again")).await.out, b"again\n");
}

#[tokio::test]
async fn exec_needs_the_token_and_the_flag() {
    let s = exec_server(|_| {}).await;
    let mut anon = s.client().await;
    let e = exec_err(&mut anon, &spec(&["true"])).await;
    assert_eq!(e.code(), Some(ErrorCode::AuthRequired));
    // The connection goes on after a refusal.
    anon.ls("").await.unwrap();

    let s = TestServer::start(|c| {
        c.token = Some(Secret::new(TOKEN));
        c.anonymous = Rights {
            read: true,
            ..Rights::default()
        };
    })
    .await;
    let mut c = s.client_with(TOKEN).await.unwrap();
    let e = exec_err(&mut c, &spec(&["true"])).await;
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    assert!(e.to_string().contains("--allow-exec"));
}

#[tokio::test]
async fn job_limits_answer_busy() {
    let s = exec_server(|c| {
        c.exec.jobs_per_client = 1;
    })
    .await;
    let mut a = authed(&s).await;
    let mut b = authed(&s).await;
    let long = tokio::spawn(async move {
        let r = run(&mut a, &sh("sleep 2")).await;
        r.report.code
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = exec_err(&mut b, &spec(&["true"])).await;
    assert_eq!(e.code(), Some(ErrorCode::Busy));
    assert_eq!(long.await.unwrap(), Some(0));
    // The slot is given back.
    assert_eq!(run(&mut b, &spec(&["true"])).await.report.code, Some(0));
}

#[tokio::test]
async fn protocol_abuse_during_exec_is_refused_and_stops_the_job() {
    let s = exec_server(|_| {}).await;
    // stdin outside an exec.
    let mut conn = raw(&s).await;
    conn.send(Kind::Request, &Request::Stdin, 0).await.unwrap();
    assert_eq!(conn.next_head().await.unwrap().kind, Kind::Error);

    // Another request in the middle of a running command.
    let mut conn = raw(&s).await;
    let pgid = start_raw(&mut conn, "echo $$; sleep 300", true).await;
    conn.send(
        Kind::Request,
        &Request::Ls {
            path: String::new(),
        },
        0,
    )
    .await
    .unwrap();
    let mut saw_error = false;
    while let Ok(head) = conn.next_head().await {
        if head.kind == Kind::Error {
            saw_error = true;
        }
        conn.discard_body().await.unwrap();
    }
    assert!(saw_error);
    assert_group_gone(pgid, 5).await;

    // More stdin in flight than the window allows.
    let mut conn = raw(&s).await;
    let pgid = start_raw(&mut conn, "echo $$; sleep 300", true).await;
    let too_much = vec![0u8; 2 * 1024 * 1024];
    let _ = conn
        .send(Kind::Request, &Request::Stdin, too_much.len() as u64)
        .await;
    let _ = conn.send_body(&too_much).await;
    let mut code = None;
    while let Ok(head) = conn.next_head().await {
        if head.kind == Kind::Error {
            let e: ferry::wire::messages::ErrorReply =
                serde_json::from_slice(&head.header).unwrap();
            code = Some(e.code);
        }
        let _ = conn.discard_body().await;
    }
    assert_eq!(code, Some(ErrorCode::TooLarge));
    assert_group_gone(pgid, 5).await;
}

#[tokio::test]
async fn one_connection_runs_many_commands_and_file_requests_between() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    for i in 0..20 {
        let r = run_with(&mut c, &spec(&["cat"]), Some(format!("{i}").as_bytes())).await;
        assert_eq!(r.out, format!("{i}").as_bytes());
        c.ls("").await.unwrap();
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_throttles_the_command() {
    let s = exec_server(|_| {}).await;
    let mut conn = raw(&s).await;
    // Counts the 64 KiB blocks it has managed to write.
    let pgid = start_raw(
        &mut conn,
        "echo $$; i=0; while :; do head -c 65536 /dev/zero; i=$((i+1)); echo $i > count; done",
        false,
    )
    .await;
    let count = || -> u64 {
        std::fs::read_to_string(s.path("count"))
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0)
    };
    // We read nothing more: pipes, the server's queue and the socket
    // buffers fill, then the command blocks.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let early = count();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = count();
    assert_eq!(early, late, "the command kept writing: {early} then {late}");
    assert!(late < 1024, "{late} blocks (64 MiB) buffered somewhere");
    drop(conn);
    assert_group_gone(pgid, 10).await;
}
