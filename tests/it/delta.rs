//! An upload proportional to the change: a redeploy whose live release shipit built earlier
//! sends a delta, the host builds the same release from it, and a live release changed on the
//! host gets the whole archive.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;
use support::project::Archive;
use support::stack::Stack;

/// The one host's value of a per-host map of a deploy's JSON.
fn of_host<'a>(json: &'a Value, key: &str) -> &'a Value {
    let map = json[key]
        .as_object()
        .unwrap_or_else(|| panic!("no {key}: {json}"));
    assert_eq!(map.len(), 1, "{json}");
    map.values().next().unwrap()
}

/// Asserts the release `id` on the stack's host holds exactly the files of the archive the
/// deploy `json` reports, with their modes and symlinks: what unpacking it would make.
fn is_the_archive(stack: &Stack, json: &Value, id: &str) {
    let archive = Archive::open(Path::new(json["archive"]["path"].as_str().unwrap()));
    let release = stack.deploy_to().join("releases").join(id);
    for entry in &archive.entries {
        let path = release.join(&entry.path);
        match &entry.link {
            Some(link) => {
                assert_eq!(
                    std::fs::read_link(&path).unwrap(),
                    Path::new(link),
                    "{}",
                    entry.path
                )
            }
            None => {
                assert_eq!(std::fs::read(&path).unwrap(), entry.bytes, "{}", entry.path);
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
                assert_eq!(mode, entry.mode & 0o7777, "{}", entry.path);
            }
        }
    }
}

#[test]
fn a_code_only_redeploy_sends_a_delta_that_makes_the_same_release() {
    let stack = Stack::start();
    let project = &stack.project;
    project.write("pages/doomed.py", "GONE = True\n");
    // An asset that does not compress, as a real project's images and fonts: the example alone
    // is a dozen KB, of which a delta's manifest is a fair part.
    let mut noise = Vec::with_capacity(512 * 1024);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < 512 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend(x.to_le_bytes());
    }
    std::fs::write(project.path("pages/static/pages/photo.bin"), noise).unwrap();
    project.commit_all("a file the next deploy deletes, an asset");
    let first = stack.deploy_ok();
    assert_eq!(of_host(&first, "upload"), "sent", "{first}");
    let full = first["archive"]["size"].as_u64().unwrap();
    // The harness's builds all carry the sandbox's one commit time, so each overwrites the last
    // in `.shipit/dist`; a real build at another time leaves the earlier one beside it.
    let built = Path::new(first["archive"]["path"].as_str().unwrap());
    std::fs::copy(
        built,
        built.with_file_name("hello-test-20250101000000.tar.gz"),
    )
    .unwrap();
    assert!(
        of_host(&first, "bytes_sent").as_u64().unwrap() >= full,
        "{first}"
    );

    // One file changed, one deleted, one executable added.
    stack.change_page("sent as a delta");
    project.git(&["rm", "-q", "pages/doomed.py"]);
    project.write("bin/tool.sh", "#!/bin/sh\necho tool\n");
    std::fs::set_permissions(
        project.path("bin/tool.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    project.commit_all("change, delete, add");
    let started = std::time::Instant::now();
    let second = stack.deploy_ok();
    let elapsed = started.elapsed();
    let id = second["release"].as_str().unwrap();
    assert_eq!(of_host(&second, "upload"), "delta", "{second}");
    let sent = of_host(&second, "bytes_sent").as_u64().unwrap();
    let size = second["archive"]["size"].as_u64().unwrap();
    eprintln!("[delta] full upload {full} bytes, delta {sent} of a {size}-byte archive, deploy {elapsed:?}");
    assert!(
        sent * 20 < size,
        "a delta of {sent} bytes for an archive of {size}"
    );
    is_the_archive(&stack, &second, id);
    let release = stack.deploy_to().join("releases").join(id);
    assert!(!release.join("pages/doomed.py").exists());
    stack.serves_release(id);
    let page = stack.page("/", |status, _| status == 200);
    assert!(page.contains("sent as a delta"), "{page}");

    // A file of the live release changed on the host: the manifest check catches it before
    // anything is linked, and the host gets the whole archive.
    let live = stack
        .deploy_to()
        .join("releases")
        .join(id)
        .join("pages/views.py");
    let mut text = std::fs::read_to_string(&live).unwrap();
    text.push_str("\n# changed on the host\n");
    std::fs::write(&live, text).unwrap();
    stack.change_page("after a change on the host");
    let run = stack.deploy(&[]);
    run.expect_code(0);
    let third = run.json();
    assert_eq!(of_host(&third, "upload"), "sent", "{third}");
    assert!(
        of_host(&third, "bytes_sent").as_u64().unwrap()
            >= third["archive"]["size"].as_u64().unwrap()
    );
    is_the_archive(&stack, &third, third["release"].as_str().unwrap());
}
