//! ASGI under real components: OpenSSH sshd, nginx and supervisord, and the example project
//! served by uvicorn (as gunicorn's worker class, `server = "uvicorn"`) with a plain-ASGI
//! websocket echo on `/ws/` that nginx passes through (`websocket_paths`).
//!
//! HTTP and a websocket echo go through nginx (and, for the close and reconnect, under a real
//! systemd too); a redeploy under the load probe loses no request;
//! a websocket open to the old release is closed when that release stops (1012, service
//! restart, within its stop timeout and never before the switch), and a reconnect reaches the
//! new release.

use std::time::{Duration, Instant};

use support::load::Load;
use support::stack::*;
use support::websocket::{Message, WebSocket};

/// The old release's graceful timeout: gunicorn kills what is still running after it.
const GRACEFUL: u64 = 10;

/// The stack of these tests: the example project's ASGI requirements, `server = "uvicorn"`,
/// websockets on `/ws/`.
fn asgi_stack() -> Stack {
    let mut stack = Stack::start();
    stack.set_requirements("requirements/asgi.txt");
    stack.set_options(|o| o.extra = "server = \"uvicorn\"\n".into());
    let project = &stack.project;
    project.edit_config(
        "[targets.test.nginx]\n",
        "[targets.test.nginx]\nwebsocket_paths = [\"/ws/\"]\n",
    );
    project.edit_config(
        "[targets.test.vars]\n",
        &format!("[targets.test.vars]\ngraceful_timeout = {GRACEFUL}\n"),
    );
    project.commit_all("ASGI target");
    stack
}

/// A websocket to the echo through `nginx` on `port`.
fn echo_socket(port: u16, nginx: &support::Nginx) -> WebSocket {
    WebSocket::connect(port, "/ws/echo", Duration::from_secs(120)).unwrap_or_else(|e| {
        panic!(
            "websocket through nginx: {e}\nnginx error.log:\n{}",
            nginx.error_log()
        )
    })
}

/// Sends `text` and returns the echo (`RELEASE TEXT`).
fn echo(socket: &mut WebSocket, text: &str) -> String {
    socket.send(text).expect("send on the websocket");
    match socket.receive().expect("an answer on the websocket") {
        Message::Text(answer) => answer,
        other => panic!("expected the echo of {text:?}, got {other:?}"),
    }
}

#[test]
fn an_asgi_target_serves_http_and_websockets_and_redeploys_under_load() {
    let stack = asgi_stack();
    let v1 = stack.deploy_release();
    stack.serves_release(&v1);
    let log = app_log(&stack.deploy_to());
    assert!(
        log.contains("Using worker: uvicorn_worker.UvicornWorker"),
        "the app server is not uvicorn:\n{log}"
    );
    let mut socket = echo_socket(stack.port, &stack.host.nginx);
    assert_eq!(echo(&mut socket, "hello"), format!("{v1} hello"));

    let load = Load::start(stack.port, "/health", 2, Duration::from_secs(90));
    assert!(
        load.wait_for_more_ok(50, Duration::from_secs(20)),
        "the load does not get through before the deploy: {:?}",
        load.counts()
    );

    // The socket open to v1 waits, in a thread, for what the server sends next; when it is
    // closed, `current` must already name the new release.
    let deploy_to = stack.deploy_to();
    let held = std::thread::spawn(move || {
        let message = socket.receive();
        (message, Instant::now(), current_of(&deploy_to))
    });

    stack.change_page("marker: v2");
    let deployed = Instant::now();
    let v2 = stack.deploy_release();
    let body = stack.serves_release(&v2);
    assert!(body.contains("<p>marker: v2</p>"), "{body}");
    let finished = Instant::now();

    let (message, closed_at, current) = held.join().unwrap();
    assert_eq!(
        message.expect("a close frame, not a dropped connection"),
        Message::Close(Some(1012)),
        "the old release closes its websocket as a service restart"
    );
    assert_eq!(current.as_deref(), Some(format!("releases/{v2}").as_str()));
    assert!(
        closed_at <= finished + Duration::from_secs(GRACEFUL + 5),
        "closed {:?} after the deploy began, past the old release's stop timeout",
        closed_at - deployed
    );
    eprintln!(
        "[asgi] websocket to {v1} closed {:.1}s after the deploy began ({:.1}s deploy)",
        (closed_at - deployed).as_secs_f64(),
        (finished - deployed).as_secs_f64()
    );

    let mut again = echo_socket(stack.port, &stack.host.nginx);
    assert_eq!(echo(&mut again, "again"), format!("{v2} again"));

    assert!(load.wait_for_more_ok(50, Duration::from_secs(20)));
    let report = load.stop();
    assert_no_request_failed(&stack, &report, " during an ASGI redeploy");
    assert!(
        report.ok >= 100,
        "too few requests to mean anything: {report}"
    );
}

/// `server = "uvicorn"` with requirements that lack uvicorn's worker: the deploy fails before
/// the switch, says which module is missing and what to pin.
#[test]
fn uvicorn_without_its_worker_package_fails_the_deploy_naming_it() {
    let mut stack = Stack::start();
    stack.set_options(|o| o.extra = "server = \"uvicorn\"\n".into());
    let run = stack.deploy(&[]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    run.says_error(&[
        "the app server died with: ModuleNotFoundError: No module named 'uvicorn_worker'",
        "pin uvicorn-worker (and websockets) in the target's requirements",
    ]);
    assert_eq!(stack.current(), None, "nothing was switched to");
}

/// The same under systemd: the web unit runs uvicorn's workers, the websocket to the old
/// release is closed when its unit stops, and a reconnect reaches the new one.
#[test]
fn under_systemd_the_old_releases_websocket_is_closed_and_a_reconnect_reaches_the_new_one() {
    let mut stack = support::systemd_stack::SystemdStack::start();
    stack.configure(|s| {
        s.requirements = "requirements/asgi.txt".into();
        s.extra = "server = \"uvicorn\"\n".into();
    });
    let site = "[targets.test.nginx]\n";
    stack
        .project
        .edit_config(site, &format!("{site}websocket_paths = [\"/ws/\"]\n"));
    stack.project.commit_all("websockets");
    let v1 = stack.deploy_release();
    stack.serves_release(&v1);
    let mut socket = echo_socket(stack.port, &stack.host.nginx);
    assert_eq!(echo(&mut socket, "hello"), format!("{v1} hello"));

    stack.change_page("marker: v2");
    let v2 = stack.deploy_release();
    stack.serves_release(&v2);
    assert_eq!(socket.receive().unwrap(), Message::Close(Some(1012)));
    let mut again = echo_socket(stack.port, &stack.host.nginx);
    assert_eq!(echo(&mut again, "again"), format!("{v2} again"));
    assert!(
        stack
            .journal()
            .contains("Using worker: uvicorn_worker.UvicornWorker"),
        "{}",
        stack.journal()
    );
}
