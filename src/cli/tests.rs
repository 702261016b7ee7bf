use super::*;
use clap::{CommandFactory, ValueEnum};
use sfess_agents::{Normalizer, Sampler};

use crate::commands::train::TrainArgs;
use crate::config::estimators::{EstimatorName, EstimatorOptions, ImleNoiseName};
use crate::system::device::DeviceSpec;

#[test]
fn clap_definition_is_consistent() {
    Cli::command().debug_assert();
}

/// The command line, `config.json` and the library name each normaliser and sampler alike.
#[test]
fn value_names_match_the_library() {
    for value in Normalizer::value_variants() {
        let name = value.to_possible_value().unwrap().get_name().to_owned();
        assert_eq!(name, value.name());
        assert_eq!(serde_json::to_value(value).unwrap(), serde_json::Value::from(name));
    }
    for value in Sampler::value_variants() {
        let name = value.to_possible_value().unwrap().get_name().to_owned();
        assert_eq!(name, value.name());
        assert_eq!(serde_json::to_value(value).unwrap(), serde_json::Value::from(name));
    }
    // Every backend, and auto.
    assert_eq!(Normalizer::value_variants().len(), Normalizer::ALL.len() + 1);
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("sfess-agent").chain(args.iter().copied()))
}

#[test]
fn parses_inspect() {
    let cli =
        parse(&["inspect", "--k", "-1", "--logits", "-1 2", "--device", "cpu", "--sampler", "gumbel-topk"]).unwrap();
    assert_eq!(cli.device(), DeviceSpec::Cpu);
    let Command::Inspect(args) = cli.command else { panic!("not inspect") };
    assert_eq!(args.k, -1);
    assert_eq!(args.source.logits.as_deref(), Some("-1 2"));
    assert_eq!(args.sampler, Sampler::GumbelTopK);
    assert_eq!(args.normalizer, Normalizer::Auto);
    assert_eq!((args.samples, args.seed), (None, 0));
    // --device also works before the subcommand, and defaults to auto.
    assert_eq!(
        parse(&["--device", "cuda:1", "inspect", "-k", "1", "--logits", "0"]).unwrap().device(),
        DeviceSpec::CudaIndex(1)
    );
    let absent = parse(&["inspect", "-k", "1", "--logits", "0"]).unwrap();
    assert_eq!((absent.device, absent.device()), (None, DeviceSpec::Auto));
}

#[test]
fn exactly_one_logits_source() {
    assert!(parse(&["inspect", "--k", "1"]).is_err());
    assert!(parse(&["inspect", "--k", "1", "--logits", "0", "--logits-file", "x"]).is_err());
    assert!(parse(&["inspect", "--k", "1", "--logits", "0", "--device", "gpu"]).is_err());
}

#[test]
fn execute_writes_one_json_line() {
    let cli = parse(&["inspect", "--k", "1", "--logits-file", "-", "--device", "cpu"]).unwrap();
    let mut out = Vec::new();
    execute(&cli, &Arc::new(Registry::shipped()), &mut "[0, 0]".as_bytes(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["marginals"], serde_json::json!([0.5, 0.5]));
}

/// The `train` arguments of `args`.
fn train_args(args: &[&str]) -> TrainArgs {
    let cli = parse(args).unwrap();
    match cli.command {
        Command::Train(train) => *train,
        _ => panic!("not train"),
    }
}

#[test]
fn the_device_flag_overrides_a_config_files_device_only_when_given() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    std::fs::write(&file, r#"{"env": "max-coverage", "device": "cpu"}"#).unwrap();
    let file = file.to_str().unwrap();
    for (args, device) in [
        (vec!["train", "--config", file], "cpu"),
        (vec!["train", "--config", file, "--device", "cuda:2"], "cuda:2"),
        (vec!["--device", "auto", "train", "--config", file], "auto"),
        (vec!["train"], "auto"),
    ] {
        let cli = parse(&args).unwrap();
        let Command::Train(train) = &cli.command else { panic!("not train") };
        assert_eq!(train.resolve(cli.device, &Registry::shipped()).unwrap().device, device, "{args:?}");
    }
}

#[test]
fn imle_options_reach_the_configuration_and_the_flags_of_compare_runs() {
    let registry = Registry::shipped();
    let given = ["--imle-lambda", "5", "--imle-temperature", "0.5", "--imle-noise", "gumbel"];
    let train = train_args(&[&["train"][..], &given].concat());
    let options = train.resolve(None, &registry).unwrap().estimator_options;
    let expected = EstimatorOptions {
        imle_lambda: 5.0,
        imle_temperature: 0.5,
        imle_noise: ImleNoiseName::Gumbel,
        ..Default::default()
    };
    assert_eq!(options, expected);
    // compare gives each of its runs exactly the flags given, every other option its default.
    let cli = parse(&[&["compare", "--env", "vae-mnist", "--out", "x"][..], &given].concat()).unwrap();
    let Command::Compare(compare) = cli.command else { panic!("not compare") };
    let spec = crate::commands::compare::sweep_of(
        &compare.env,
        &[EstimatorName::Imle],
        &[0],
        &compare.task,
        &DeviceSpec::Auto,
    )
    .unwrap();
    for task in spec.combinations(&registry).unwrap() {
        assert_eq!(task.config.estimator_options, expected);
    }
}

/// An estimator flag left out keeps the `--config` file's value; one given overrides it,
/// even when it gives the default.
#[test]
fn estimator_flags_override_a_config_file_only_when_given() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let options = r#"{"temperature": 2.0, "imle_lambda": 3.0, "normalizer": "dft", "reward_to_go": true}"#;
    std::fs::write(&file, format!(r#"{{"env": "max-coverage", "estimator_options": {options}}}"#)).unwrap();
    let file = file.to_str().unwrap();
    let resolve = |flags: &[&str]| {
        let train = train_args(&[&["train", "--config", file][..], flags].concat());
        train.resolve(None, &Registry::shipped()).unwrap().estimator_options
    };
    let from_file = EstimatorOptions {
        temperature: 2.0,
        imle_lambda: 3.0,
        normalizer: Normalizer::Dft,
        reward_to_go: true,
        ..Default::default()
    };
    assert_eq!(resolve(&[]), from_file);
    assert_eq!(
        resolve(&[
            "--temperature",
            "0.5",
            "--normalizer",
            "auto",
            "--reward-to-go",
            "false",
            "--sampler",
            "gumbel-topk"
        ]),
        EstimatorOptions {
            temperature: 0.5,
            normalizer: Normalizer::Auto,
            reward_to_go: false,
            sampler: Sampler::GumbelTopK,
            ..from_file.clone()
        }
    );
    // --reward-to-go alone is true.
    let train = train_args(&["train", "--reward-to-go"]);
    assert!(train.resolve(None, &Registry::shipped()).unwrap().estimator_options.reward_to_go);
    // A value that parses but is out of range reaches the check, which names its flag.
    let train = train_args(&["train", "--env", "max-coverage", "--temperature", "inf"]);
    let message = train.resolve(None, &Registry::shipped()).unwrap().check(&Registry::shipped()).unwrap_err();
    assert_eq!(message.to_string(), "--temperature must be positive and finite, got inf");
}

#[test]
fn the_flags_that_became_environment_options_still_work() {
    let registry = Registry::shipped();
    let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let rewritten = with_env_options(
        &registry,
        args(&[
            "sfess-agent",
            "train",
            "--env",
            "cmd",
            "--reward-cmd",
            "python3 s.py",
            "--n=20",
            "--sensor-modes",
            "4",
            "--",
            "--n",
        ]),
    );
    assert_eq!(
        rewritten,
        args(&[
            "sfess-agent",
            "train",
            "--env",
            "cmd",
            "--env-option",
            "command=python3 s.py",
            "--env-option",
            "n=20",
            "--env-option",
            "modes=4",
            "--",
            "--n"
        ])
    );
    let cli = Cli::try_parse_from(with_env_options(
        &registry,
        args(&["sfess-agent", "train", "--env", "max-coverage", "--coverage-elements", "40", "--env-option", "n=9"]),
    ))
    .unwrap();
    let Command::Train(train) = cli.command else { panic!("not train") };
    let config = train.resolve(None, &registry).unwrap().check(&registry).unwrap().into_config();
    let section = &config.env_options["max-coverage"];
    assert_eq!((section["elements"].clone(), section["n"].clone()), (40.into(), 9.into()));
    // An old flag on an environment without that option names the environment's options.
    let cli =
        Cli::try_parse_from(with_env_options(&registry, args(&["sfess-agent", "train", "--neighbours", "3"]))).unwrap();
    let Command::Train(train) = cli.command else { panic!("not train") };
    let message = train.resolve(None, &registry).unwrap().check(&registry).unwrap_err().to_string();
    assert!(
        message.contains("knn-mnist has no option \"neighbours\"; its options are: candidates, embedding-dim"),
        "{message}"
    );
    assert!(parse(&["train", "--env-option", "novalue"]).is_err());
}

#[test]
fn the_wrapper_learns_which_data_sets_a_command_reads() {
    let registry = Registry::shipped();
    let needed = |list: &[&str]| data_sets_needed(&registry, &list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    assert_eq!(needed(&["train"]), ["mnist"]);
    assert_eq!(needed(&["train", "--env", "vae-fashion", "--steps", "3"]), ["fashion-mnist"]);
    assert_eq!(needed(&["compare", "--env", "sensor-placement-mnist", "--out", "x"]), ["mnist"]);
    assert!(needed(&["train", "--env", "max-coverage"]).is_empty());
    assert!(needed(&["train", "--env", "cmd", "--reward-cmd", "cat", "--n", "3"]).is_empty());
    assert!(needed(&["inspect", "-k", "1", "--logits", "0"]).is_empty());
    assert!(needed(&["train", "--no-such-flag"]).is_empty());
}
