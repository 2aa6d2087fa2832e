//! toggle_spigot: parsing and wiring only; the commands are in the library.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use aws_config::Region;
use spigot_common::aws;
use spigot_common::buffer::WebhookBuffer;
use spigot_common::config::{BufferConfig, StageConfig, TargetConfig};
use spigot_common::jenkins::JenkinsTarget;
use spigot_common::secrets::SpigotSecrets;
use spigot_common::state::Stage;
use spigot_common::target_routes::TargetRoutes;
use toggle_spigot::age::AgeSource;
use toggle_spigot::cli::{self, Command, Invocation};
use toggle_spigot::commands::{self, Output};
use toggle_spigot::ops::Spigot;
use toggle_spigot::settings::{self, Layer, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    let invocation = cli::parse();
    init_tracing();
    match run(invocation).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("toggle_spigot: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Warnings and errors of the shared code on stderr, in plain text (`RUST_LOG` for more).
fn init_tracing() {
    // aws_config warns at length while it looks for a region; `run` says it plainly.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,aws_config=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}

async fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let sdk = match &invocation.region {
        None => aws::sdk_config().await?,
        // Set before loading, so the chain does not go looking for a region (IMDS).
        Some(region) => {
            aws::sdk_loader()?
                .region(Region::new(region.clone()))
                .load()
                .await
        }
    };
    if sdk.region().is_none() {
        bail!("no AWS region: pass --region or set AWS_REGION");
    }

    let stack = match &invocation.stack {
        Some(name) => {
            settings::read_stack(&aws_sdk_cloudformation::Client::new(&sdk), name).await?
        }
        None => Layer::default(),
    };
    let settings = settings::merge(invocation.command_line, stack, invocation.environment);
    let out = Output {
        json: invocation.json,
    };
    let name = command_name(&invocation.command);
    let buffer = |payload_bucket: String| -> anyhow::Result<WebhookBuffer> {
        Ok(WebhookBuffer::new(
            aws_sdk_sqs::Client::new(&sdk),
            aws::s3_client(&sdk),
            BufferConfig {
                queue_url: settings.queue_url(name)?,
                dlq_url: settings.dlq_url.clone(),
                payload_bucket,
            },
        ))
    };
    // Only `drain` reads or deletes spilled bodies; the others never touch the bucket.
    let no_bucket = String::new();

    match invocation.command {
        Command::Off => commands::off(&stage(&sdk, &settings).await?, out).await,
        Command::Restore(args) => {
            commands::restore(&stage(&sdk, &settings).await?, args.state, out).await
        }
        Command::On(args) => {
            let spigot = Spigot {
                buffer: buffer(no_bucket)?,
                stage: stage(&sdk, &settings).await?,
            };
            commands::on(&spigot, &args, out).await
        }
        Command::Status => {
            let spigot = Spigot {
                buffer: buffer(no_bucket)?,
                stage: stage(&sdk, &settings).await?,
            };
            let ages = AgeSource::cloudwatch(aws_sdk_cloudwatch::Client::new(&sdk));
            commands::status(&spigot, &ages, out).await
        }
        // The DLQ and the queue only: no stage involved.
        Command::Redrive(args) => {
            settings.dlq_url(name)?;
            commands::redrive(&buffer(no_bucket)?, &args, out).await
        }
        Command::Drain(args) => {
            let target = target(&args, &sdk).await?;
            let routes = TargetRoutes::from_settings(
                args.target_routes.as_deref(),
                Some(&args.target_path),
                args.eor_jenkins_job.as_deref(),
            )?;
            let concurrency = usize::try_from(args.concurrency).context("--concurrency")?;
            let spigot = Spigot {
                buffer: buffer(settings.payload_bucket(name)?)?,
                stage: stage(&sdk, &settings).await?,
            };
            commands::drain(&spigot, &target, &routes, concurrency, out).await
        }
    }
}

/// The stage whose variable is the switch, the API looked up by name if need be.
async fn stage(sdk: &aws_config::SdkConfig, settings: &Settings) -> anyhow::Result<Stage> {
    let apigateway = aws_sdk_apigateway::Client::new(sdk);
    let rest_api_id = settings::resolve_api_id(&apigateway, settings.api()?).await?;
    Ok(Stage::new(
        apigateway,
        StageConfig {
            rest_api_id,
            stage_name: settings.stage.clone(),
        },
    ))
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Status => "status",
        Command::On(_) => "on",
        Command::Off => "off",
        Command::Drain(_) => "drain",
        Command::Redrive(_) => "redrive",
        Command::Restore(_) => "restore",
    }
}

/// The drain's target, with Jenkins credentials from the credentials bucket (or the
/// environment when there is none).
async fn target(
    args: &cli::DrainArgs,
    sdk: &aws_config::SdkConfig,
) -> anyhow::Result<JenkinsTarget> {
    let url = args.target_url.trim().trim_end_matches('/').to_string();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("--target-url / TARGET_URL must start with http:// or https://");
    }
    let s3 = aws::s3_client(sdk);
    let secrets = match &args.credentials_bucket {
        Some(bucket) => SpigotSecrets::from_bucket(&s3, bucket).await,
        None => SpigotSecrets::load(&s3).await,
    }
    .context("loading the Jenkins credentials")?;
    Ok(JenkinsTarget::new(
        TargetConfig {
            url,
            health_path: args.target_health_path.clone(),
            timeout: Duration::from_millis(args.forward_timeout_ms),
        },
        secrets.jenkins,
    )?)
}
