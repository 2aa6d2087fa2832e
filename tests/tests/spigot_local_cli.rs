//! `spigot-local` as people run it: `make demo`'s scenario with its numbers, and no
//! process left behind however `up` ends (Ctrl-C, `down`, `kill -9`).
//!
//! The binaries come from `cargo build --workspace --bins` (`make test` runs it first).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use spigot_local::demo;
use spigot_local::stack::Stack;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_adds_up() {
    let stack = Stack::start(demo::stack_options()).await.unwrap();
    let rows = demo::run(&stack, &demo::DemoOptions::default())
        .await
        .unwrap();
    println!("{}", demo::table(&rows));
    let row = |what: &str| {
        rows.iter()
            .find(|r| r.what == what)
            .unwrap_or_else(|| panic!("no row {what:?}"))
    };
    // The counts the issue asks for, read back from Jenkins, the queues and the stage.
    assert_eq!(row("webhooks sent").actual, "25");
    assert_eq!(row("delivered at once while ON").actual, "5");
    assert_eq!(row("queued while OFF").actual, "20");
    assert_eq!(row("waiting while Jenkins was down").actual, "20");
    assert_eq!(row("distinct deliveries at Jenkins").actual, "25");
    assert_eq!(row("received by Jenkins").actual, "25");
    assert_eq!(row("lost").actual, "0");
    assert_eq!(row("in the DLQ").actual, "0");
    assert_eq!(row("final spigot_state").actual, "ON");
    assert_eq!(row("runs started by port_runner").actual, "1");
    assert_eq!(row("Jenkins builds of the run").actual, "1");
    assert_eq!(row("run status").actual, "SUCCESS");
    assert_eq!(row("Port lines equal the Jenkins lines").actual, "yes");
    assert_eq!(row("lines in Port while the build ran").actual, "yes");
    assert_eq!(row("timeline documents").actual, "6");
    assert_eq!(row("run duration (ms)").actual, "2537000");
    assert_eq!(row("waiting in the queue while OFF").actual, "1");
    assert_eq!(row("end-of-run builds while OFF").actual, "0");
    assert_eq!(row("end-of-run builds after ON").actual, "1");
    let mismatches: Vec<_> = rows.iter().filter(|r| !r.ok()).collect();
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

fn binary(name: &str) -> PathBuf {
    spigot_local::functions::debug_binary(name).unwrap()
}

/// `spigot-local <args>`, run to its end.
async fn cli(args: &[&str]) -> std::process::Output {
    Command::new(binary("spigot-local"))
        .args(args)
        .output()
        .await
        .unwrap()
}

/// `spigot-local up` with the prebuilt binaries, and what it printed when ready.
async fn up(stack: &str) -> (Child, Value) {
    let mut child = Command::new(binary("spigot-local"))
        .args(["up", "--runtime", "binaries", "--stack", stack])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                if let Some(ready) = value.get("ready") {
                    return ready.clone();
                }
            }
        }
        panic!("spigot-local exited before it was ready")
    })
    .await
    .expect("spigot-local was ready within 90 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, ready)
}

/// Every process below `root`, from /proc.
fn descendants(root: u32) -> HashSet<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the command name, which may hold spaces and parentheses.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parents.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = HashSet::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for child in parents.get(&pid).into_iter().flatten() {
            if found.insert(*child) {
                todo.push(*child);
            }
        }
    }
    found
}

/// Running, not a zombie waiting to be reaped.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
                .unwrap_or(true)
        })
        .unwrap_or(false)
}

async fn all_gone(pids: &HashSet<u32>) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stack's processes: the emulator, the search server and the two functions at least.
async fn stack_processes(child: &Child, ready: &Value) -> HashSet<u32> {
    let pid = child.id().unwrap();
    assert_eq!(ready["pid"].as_u64(), Some(u64::from(pid)));
    let below = descendants(pid);
    assert!(
        below.len() >= 4,
        "expected moto, osmem and two functions below {pid}: {below:?}"
    );
    below
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_spigot_local_leaves_no_process_behind() {
    let (mut child, ready) = up("kill-nine").await;
    let processes = stack_processes(&child, &ready).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let left = all_gone(&processes).await;
    assert!(left.is_empty(), "still running after kill -9: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_everything_and_exits_cleanly() {
    let (mut child, ready) = up("ctrl-c").await;
    let processes = stack_processes(&child, &ready).await;
    // SAFETY: sends SIGINT to our own child.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    let left = all_gone(&processes).await;
    assert!(left.is_empty(), "still running after Ctrl-C: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn down_stops_the_stack_up_started() {
    let (mut child, ready) = up("down-test").await;
    let processes = stack_processes(&child, &ready).await;
    let env = cli(&["env", "--stack", "down-test"]).await;
    let exports = String::from_utf8_lossy(&env.stdout);
    assert!(
        exports.contains(&format!(
            "export AWS_ENDPOINT_URL='{}'",
            ready["aws_endpoint"].as_str().unwrap()
        )),
        "{exports}"
    );
    let down = cli(&["down", "--stack", "down-test"]).await;
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    let left = all_gone(&processes).await;
    assert!(left.is_empty(), "still running after down: {left:?}");
    let again = cli(&["down", "--stack", "down-test"]).await;
    assert!(String::from_utf8_lossy(&again.stdout).contains("not running"));
}
