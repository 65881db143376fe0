//! Load benchmark: consecutive deploy/rollback cycles of the example project while clients hit
//! the site through nginx without a pause, counting every request that fails.
//!
//! Run as root (the integration-test stack creates the `deploy` account and runs real sshd, nginx
//! and supervisord on loopback): `cargo bench --bench load`. Needs PyPI access the first time
//! the `deploy` user's uv cache is empty.
//!
//! What it does:
//! 1. Starts the stack of the integration tests (`support::stack`: sshd, nginx and
//!    supervisord on free loopback ports, a deploy-owned `deploy_to`, a git-committed copy of
//!    `tests/example`) and deploys a first release.
//! 2. Starts `SHIPIT_LOAD_THREADS` (4) client threads (`support::load`): each sends `GET /health`
//!    through nginx over a fresh connection per request (HTTP/1.0, no keep-alive), so every
//!    request makes nginx connect through `current`; only a complete `200` counts as ok. By
//!    default back to back (on a small machine that saturates the CPUs, which slows the
//!    deploys); `SHIPIT_LOAD_PAUSE_MS` makes each thread pause between requests.
//! 3. Runs `SHIPIT_LOAD_CYCLES` (10) cycles: change the index page and commit, `shipit deploy`,
//!    check the new release is served, `shipit rollback`, check the previous one is served again.
//! 4. Stops the load and prints a table per cycle (deploy and rollback wall times, requests and
//!    failures during the cycle) and the totals. Exits with status 1 if any request failed.

use std::time::{Duration, Instant};

use support::bench::env_num;
use support::load::Load;
use support::stack::Stack;

struct Cycle {
    deploy: Duration,
    rollback: Duration,
    ok: u64,
    failed: u64,
}

fn main() {
    if !support::bench::should_run("load") {
        return;
    }
    let cycles = env_num("SHIPIT_LOAD_CYCLES", 10).max(1) as usize;
    let threads = env_num("SHIPIT_LOAD_THREADS", 4).max(1) as usize;
    let pause = Duration::from_millis(env_num("SHIPIT_LOAD_PAUSE_MS", 0));
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = Instant::now();

    let stack = Stack::start();
    let first = stack.deploy_release();
    stack.serves_release(&first);
    println!(
        "first release {first} deployed in {:.1}s (stack start included)",
        started.elapsed().as_secs_f64()
    );

    // Generous: 10 cycles take a minute or two; the limit only stops a hung run.
    let limit = Duration::from_secs(120 + 60 * cycles as u64);
    let load = Load::paced(stack.port, "/health", threads, pause, limit);
    if !load.wait_for_more_ok(100, Duration::from_secs(30)) {
        eprintln!("the load does not get through: {:?}", load.counts());
        std::process::exit(1);
    }

    let mut rows = Vec::new();
    let mut previous = first.clone();
    for n in 1..=cycles {
        let (ok0, failed0) = load.counts();
        stack.change_page(&format!("marker: cycle {n}"));
        let run = stack.deploy(&[]);
        run.expect_code(0);
        let deployed = run.release();
        let body = stack.serves_release(&deployed);
        assert!(
            body.contains(&format!("<p>marker: cycle {n}</p>")),
            "{body}"
        );

        let back = stack.rollback(&[]);
        back.expect_code(0);
        assert_eq!(back.json()["to"], previous.as_str(), "{}", back.stdout);
        let body = stack.serves_release(&previous);
        assert!(!body.contains(&format!("marker: cycle {n}")), "{body}");

        let (ok1, failed1) = load.counts();
        let row = Cycle {
            deploy: run.elapsed,
            rollback: back.elapsed,
            ok: ok1 - ok0,
            failed: failed1 - failed0,
        };
        println!(
            "cycle {n:>2}: deploy {deployed} {:.2}s, rollback to {previous} {:.2}s, {} requests, {} failed",
            row.deploy.as_secs_f64(),
            row.rollback.as_secs_f64(),
            row.ok + row.failed,
            row.failed
        );
        rows.push(row);
        // The rolled-back release is skipped by later rollbacks: the target stays `previous`.
        previous = stack.current_id();
    }
    let report = load.stop();

    println!();
    println!(
        "load benchmark: {cycles} deploy/rollback cycles; {threads} client threads, GET /health through nginx, a new connection per request, {} ms pause between requests",
        pause.as_millis()
    );
    println!("load average at start: {}", load_average.trim());
    println!();
    println!("| cycle | deploy | rollback | requests | failed |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for (i, row) in rows.iter().enumerate() {
        println!(
            "| {} | {:.2}s | {:.2}s | {} | {} |",
            i + 1,
            row.deploy.as_secs_f64(),
            row.rollback.as_secs_f64(),
            row.ok + row.failed,
            row.failed
        );
    }
    let stat = |f: &dyn Fn(&Cycle) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[0], v[v.len() / 2], v[v.len() - 1])
    };
    let (dmin, dmed, dmax) = stat(&|r| r.deploy.as_secs_f64());
    let (rmin, rmed, rmax) = stat(&|r| r.rollback.as_secs_f64());
    println!();
    println!("deploy   min {dmin:.2}s  median {dmed:.2}s  max {dmax:.2}s");
    println!("rollback min {rmin:.2}s  median {rmed:.2}s  max {rmax:.2}s");
    println!("requests {report}");
    println!(
        "total {:.1}s (goal: 0 failed requests)",
        started.elapsed().as_secs_f64()
    );
    if report.failed > 0 {
        eprintln!("load benchmark: {} requests failed", report.failed);
        drop(stack);
        std::process::exit(1);
    }
}
