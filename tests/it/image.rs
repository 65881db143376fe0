//! `shipit image` end to end, with real tools only: the example project under git, a Debian 12
//! base made by mmdebstrap + umoci, uv installing from PyPI, `skopeo inspect` reading the layout,
//! `umoci unpack` + `runc` running it, and a `docker-registry` on loopback taking a push.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use support::image::{base_image, skopeo, Bundle, Registry, BASE_PYTHON};
use support::project::*;
use support::{free_port, http_get, wait_for, Run};

/// The example project with an `[image]` table, a plain env value and a secret, committed.
fn image_project() -> Project {
    let project = project();
    let config = project.read("shipit.toml");
    project.write(
        "shipit.toml",
        &format!(
            "{config}\n[image]\nbase = \"{}\"\npython = \"{BASE_PYTHON}\"\n",
            base_image(Path::new(env!("CARGO_TARGET_TMPDIR")))
        ),
    );
    project.edit_config(
        "[targets.local.vars]",
        "[targets.local.env]\nHELLO_GREETING = \"from the image\"\n\n[targets.local.secrets]\nDJANGO_SECRET_KEY = { env = \"SHIPIT_TEST_IMAGE_SECRET\" }\n\n[targets.local.processes]\nworker = \"python -m celery -A hello worker -l info\"\n\n[targets.local.vars]",
    );
    project.commit_all("image");
    project
}

/// uv's downloads, kept for every test run in the tests' scratch directory.
fn uv_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("uv-cache")
}

/// `shipit image -t local ARGS --json` with uv's downloads cached.
fn image(project: &Project, args: &[&str]) -> Run {
    let uv_cache = uv_cache();
    let run = Run::of(
        project
            .shipit()
            .args(["image", "-t", "local", "--json"])
            .args(args)
            .env("UV_CACHE_DIR", uv_cache)
            .env("SHIPIT_TEST_IMAGE_SECRET", "never-in-the-image"),
    );
    run.expect_code(0);
    run
}

/// Every blob of a layout, by file name (its digest).
fn blobs(layout: &Path) -> BTreeSet<String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn layout_of(json: &Value) -> PathBuf {
    PathBuf::from(json["layout"].as_str().unwrap())
}

#[test]
fn two_builds_of_one_tree_share_every_digest_and_skopeo_reads_the_layout() {
    let project = image_project();
    let first = image(&project, &["-o", project.out("a").to_str().unwrap()]).json();
    assert_eq!(first["venv"]["reused"], false);
    assert_eq!(first["reference"], COMMIT_RELEASE);

    // Again without the kept venv layer: uv installs afresh, and still every digest is equal.
    std::fs::remove_dir_all(project.path(".shipit/image/venvs")).unwrap();
    let archive = project.out("hello.oci.tar");
    let second = image(
        &project,
        &[
            "-o",
            project.out("b").to_str().unwrap(),
            "--archive",
            archive.to_str().unwrap(),
        ],
    )
    .json();
    assert_eq!(second["venv"]["reused"], false);
    assert_eq!(first["manifest_digest"], second["manifest_digest"]);
    assert_eq!(first["layers"], second["layers"]);
    assert_eq!(blobs(&layout_of(&first)), blobs(&layout_of(&second)));
    assert_eq!(
        std::fs::read(layout_of(&first).join("index.json")).unwrap(),
        std::fs::read(layout_of(&second).join("index.json")).unwrap()
    );

    // A third build reuses the venv layer (no uv run) and gives the same image.
    let third = image(&project, &["-o", project.out("c").to_str().unwrap()]).json();
    assert_eq!(third["venv"]["reused"], true);
    assert_eq!(third["manifest_digest"], first["manifest_digest"]);

    // skopeo reads the layout and the oci-archive as the same image.
    let layout = format!("oci:{}:{COMMIT_RELEASE}", layout_of(&first).display());
    let inspect: Value = serde_json::from_str(&skopeo(&["inspect", &layout])).unwrap();
    assert_eq!(inspect["Digest"], first["manifest_digest"]);
    let from_archive: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("oci-archive:{}", archive.display()),
    ]))
    .unwrap();
    assert_eq!(from_archive["Digest"], first["manifest_digest"]);
    let layers: Vec<&str> = inspect["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let built: Vec<&str> = first["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(layers, built);
    assert_eq!(layers.len(), 3, "base, venv, app");

    let labels = &inspect["Labels"];
    assert_eq!(labels["org.opencontainers.image.revision"], project.head());
    assert_eq!(labels["org.opencontainers.image.created"], COMMIT_DATE);
    assert_eq!(labels["io.shipit.release"], COMMIT_RELEASE);
    assert_eq!(labels["io.shipit.secrets"], "DJANGO_SECRET_KEY");
    assert_eq!(inspect["Created"], COMMIT_DATE);

    // The container configuration, from the raw config.
    let config: Value = serde_json::from_str(&skopeo(&["inspect", "--config", &layout])).unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], "10001:10001");
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/venv/bin/python", "-m", "gunicorn"])
    );
    assert_eq!(c["Cmd"], serde_json::json!(["hello.wsgi:application"]));
    assert!(c["ExposedPorts"]["8000/tcp"].is_object(), "{c}");
    assert_eq!(c["Labels"]["io.shipit.process"], "web");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for expected in [
        "DJANGO_SETTINGS_MODULE=hello.settings.selected",
        "PORT=8000",
        "HELLO_GREETING=from the image",
        "PATH=/venv/bin:/usr/local/bin:/usr/bin:/bin",
    ] {
        assert!(env.contains(&expected), "{expected} not in {env:?}");
    }
    // A secret's value is nowhere in the layout (its name is, as a label).
    for blob in blobs(&layout_of(&first)) {
        let bytes = std::fs::read(layout_of(&first).join("blobs/sha256").join(&blob)).unwrap();
        assert!(
            !bytes
                .windows(b"never-in-the-image".len())
                .any(|w| w == b"never-in-the-image"),
            "blob {blob} holds the secret"
        );
    }

    // A process of the target instead of gunicorn: the same layers, another command.
    let worker = image(
        &project,
        &[
            "-o",
            project.out("w").to_str().unwrap(),
            "--process",
            "worker",
        ],
    )
    .json();
    assert_ne!(worker["manifest_digest"], first["manifest_digest"]);
    let worker_layout = format!("oci:{}:{COMMIT_RELEASE}", layout_of(&worker).display());
    let config: Value =
        serde_json::from_str(&skopeo(&["inspect", "--config", &worker_layout])).unwrap();
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["exec python -m celery -A hello worker -l info"])
    );
    assert!(c["ExposedPorts"].is_null(), "{c}");
    assert_eq!(c["Labels"]["io.shipit.process"], "worker");
    let unknown = Run::of(
        project
            .shipit()
            .args(["image", "-t", "local", "--process", "beat"]),
    );
    unknown.expect_code(2);
    assert!(
        unknown.stderr.contains("no such process"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.stderr.contains("worker"), "{}", unknown.stderr);

    // The one-off commands an orchestrator runs per rollout.
    let commands: Vec<&str> = first["release_commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(commands, ["migrate", "collectstatic"]);
}

#[test]
fn the_image_runs_under_runc_and_serves_the_example_app() {
    let project = image_project();
    let json = image(&project, &["-o", project.out("image").to_str().unwrap()]).json();
    let mut bundle = Bundle::unpack(&layout_of(&json), COMMIT_RELEASE);
    assert_eq!(bundle.config()["process"]["user"]["uid"], 10001);
    // /app is read-only for the app user: static files go to a volume, as in
    // conf/kubernetes.yaml (the example's STATIC_ROOT is /app/staticfiles).
    let statics = project.out("staticfiles");
    std::fs::create_dir_all(&statics).unwrap();
    std::os::unix::fs::chown(&statics, Some(10001), Some(10001)).unwrap();
    bundle.mount(&statics, "/app/staticfiles");

    // The release commands, as a Job would run them, in the image with its own settings.
    for command in json["release_commands"].as_array().unwrap() {
        let argv: Vec<String> = command["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let (ok, said) = bundle.run_once(&argv, &[]);
        assert!(ok, "{argv:?} failed in the container:\n{said}");
    }
    // migrate wrote the SQLite file into the shared var/ the app user owns, collectstatic the
    // example's stylesheet into the volume.
    assert!(bundle.rootfs("app/var/db.sqlite3").exists());
    let collected: Vec<String> = std::fs::read_dir(statics.join("pages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        collected
            .iter()
            .any(|name| name.starts_with("site.") && name.ends_with(".css")),
        "{collected:?}"
    );

    let port = free_port();
    let port_text = port.to_string();
    let mut container = bundle.start(&[("PORT", &port_text)]);
    let health = wait_for(Duration::from_secs(30), || {
        assert!(
            container.running(),
            "the container stopped:\n{}",
            container.log()
        );
        http_get(port, "/health").ok()
    });
    let (status, _) = health.unwrap_or_else(|| panic!("no answer on {port}:\n{}", container.log()));
    assert_eq!(status, 200, "{}", container.log());
    let (status, page) = http_get(port, "/").unwrap();
    assert_eq!(status, 200, "{page}\n{}", container.log());
    assert!(page.contains("from the image"), "{page}");
    assert!(page.contains(COMMIT_RELEASE), "{page}");
    assert!(
        container
            .log()
            .contains(&format!("Listening at: http://0.0.0.0:{port}")),
        "{}",
        container.log()
    );
    assert_eq!(container.exec(&["/usr/bin/id", "-u"]).trim(), "10001");
}

#[test]
fn a_pushed_image_pulls_back_with_the_same_digest() {
    let project = image_project();
    let registry = Registry::start();
    let reference = registry.reference("hello:local");
    let json = image(
        &project,
        &[
            "-o",
            project.out("image").to_str().unwrap(),
            "--push",
            &reference,
            "--insecure-registry",
        ],
    )
    .json();
    let built = json["manifest_digest"].as_str().unwrap();
    assert_eq!(json["pushed"]["digest"], built);

    let remote: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]))
    .unwrap();
    assert_eq!(remote["Digest"], built);
    let pulled = project.out("pulled");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:pulled", pulled.display()),
    ]);
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(pulled.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], built);
    assert_eq!(blobs(&pulled), blobs(&layout_of(&json)));
}

#[test]
fn a_package_without_a_wheel_is_named() {
    let project = image_project();
    let requirements = project.read("requirements/deployment.txt");
    project.write(
        "requirements/deployment.txt",
        &format!("{requirements}pycrypto==2.6.1\n"),
    );
    project.commit_all("a package with no wheel");
    let run = Run::of(
        project
            .shipit()
            .args(["image", "-t", "local"])
            .env("UV_CACHE_DIR", uv_cache()),
    );
    run.expect_code(1)
        .says_error(&["`pycrypto` has no wheel for Linux x86_64 and Python 3.11"]);
}

#[test]
fn an_image_needs_a_base_and_its_python() {
    let project = project();
    Run::of(project.shipit().args(["image", "-t", "local"]))
        .expect_code(2)
        .says_error(&["no base image", "skopeo copy docker://"]);
    Run::of(
        project
            .shipit()
            .args(["image", "-t", "local", "--base", "base"]),
    )
    .expect_code(2)
    .says_error(&["python is not named"]);
    Run::of(project.shipit().args([
        "image",
        "-t",
        "local",
        "--base",
        "base",
        "--python",
        "/usr/bin/python3",
    ]))
    .expect_code(2)
    .says_error(&["ending in pythonX.Y"]);
    // -o never replaces a directory that is not an image layout (here: the project itself).
    Run::of(project.shipit().args([
        "image",
        "-t",
        "local",
        "--base",
        "base",
        "--python",
        BASE_PYTHON,
        "-o",
        project.root.to_str().unwrap(),
    ]))
    .expect_code(2)
    .says_error(&["is not an OCI image layout; refusing to replace it"]);
    assert!(project.path("manage.py").exists());
}
