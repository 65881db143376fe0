//! A fleet sharing one real database: two hosts (see `support::fleet`) deploy the example project,
//! both pointed at one private PostgreSQL cluster (`support::Postgres`) by `DATABASE_URL` in a
//! shared `.env`. With SQLite each host has its own database in `shared/var`, which hides what a
//! real fleet has to get right: one schema, migrated by one host. Needs root.
//!
//! Timings: `cargo test --test postgres -- --nocapture`.

use support::fleet::{serves_release_on, TwoHosts};
use support::stack::*;
use support::*;

#[test]
fn two_hosts_share_one_postgres_database_and_only_a_fully_prepared_fleet_migrates_it() {
    let pg = Postgres::start();
    let mut two = TwoHosts::start();
    two.set_requirements("requirements/postgres.txt");
    two.share_file(".env", &format!("DATABASE_URL={}\n", pg.url()));

    // Were `migrate` run on every host, both would run it at about
    // the same time on the one database; Django's migrate takes no lock, so when the two overlap
    // one of them can fail with `relation "django_content_type" already exists`.
    let run = two.stack.deploy(&[]);
    if run.code != 0 {
        panic!(
            "deploy failed ({}) after {:?}\nstderr:\n{}\npostgres log:\n{}",
            run.code,
            run.elapsed,
            run.stderr,
            pg.log()
        );
    }
    let id = run.release();
    let json = run.json();
    assert_eq!(
        json["hosts"],
        serde_json::json!([two.a_spec, two.b_spec]),
        "{json}"
    );

    // Both hosts serve the new release, from one database: every page view is a row in it, so
    // the count one host shows includes the views of the other.
    let mut seen = Vec::new();
    for (to, host, http) in two.hosts() {
        assert_eq!(
            current_of(to),
            Some(format!("releases/{id}")),
            "{}",
            to.display()
        );
        assert_eq!(state_of(to, &id), "live");
        seen.push(visits(&serves_release_on(host, http, &id)));
        assert!(
            !to.join("shared/var/db.sqlite3").exists(),
            "{} made a SQLite database: the .env was not read",
            to.display()
        );
    }
    assert!(
        seen[1] > seen[0],
        "B counted {} visits after A counted {}: not one database",
        seen[1],
        seen[0]
    );
    let rows: u64 = pg
        .query("SELECT count(*) FROM pages_visit")
        .trim()
        .parse()
        .unwrap();
    assert!(
        rows >= seen[1],
        "{rows} visits in PostgreSQL, B showed {}",
        seen[1]
    );

    // The schema is in PostgreSQL.
    let migrations = pg.query("SELECT app || '.' || name FROM django_migrations ORDER BY id");
    assert!(
        migrations.lines().any(|m| m == "pages.0001_initial"),
        "django_migrations in PostgreSQL: {migrations:?}"
    );

    // `migrate` ran on exactly one host (the primary) for the whole fleet. Each host reports a finished step as `HOST  ✓ STEP  TIME` (src/output.rs, `step_done`).
    let migrated: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "✓");
            words.next().is_some() && words.next() == Some("migrate")
        })
        .collect();
    assert_eq!(
        migrated.len(),
        1,
        "`migrate` ran on {} hosts, expected exactly one:\n{}",
        migrated.len(),
        run.stderr
    );

    // The primary migrates the shared database only once every host has finished the steps
    // before `migrate`: when B fails to prepare, the new migration never runs (it would leave
    // the database ahead of every host's code). Once B is fixed, the next deploy migrates.
    two.stack.project.write(
        "pages/migrations/0002_mark.py",
        "from django.db import migrations\n\n\n\
         class Migration(migrations.Migration):\n\
         \x20   dependencies = [('pages', '0001_initial')]\n\
         \x20   operations = [migrations.RunSQL('CREATE TABLE shipit_mark (id int)', 'DROP TABLE shipit_mark')]\n",
    );
    two.stack.project.commit_all("a migration");
    let applied = || pg.query("SELECT name FROM django_migrations WHERE name = '0002_mark'");
    let b_releases = two.b_to.join("releases");
    chmod(&b_releases, 0o555);
    two.stack.deploy(&[]).expect_code(1).says(&[
        &format!("{}: step `unpack` failed", two.b_spec),
        "nothing was switched",
    ]);
    assert_eq!(
        applied().trim(),
        "",
        "the primary migrated although B had failed"
    );
    chmod(&b_releases, 0o755);
    let run = two.stack.deploy(&[]);
    run.expect_code(0);
    assert_eq!(applied().trim(), "0002_mark");
    for (to, _, _) in two.hosts() {
        assert_eq!(current_of(to), Some(format!("releases/{}", run.release())));
    }
}
