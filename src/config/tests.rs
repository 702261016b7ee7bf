use super::*;

fn registry() -> Registry {
    Registry::shipped()
}

/// The default configuration of `env`, with the command and items `cmd` needs (and the
/// state width `cmd-episodes` needs).
fn default_for(env: &str) -> TrainConfig {
    let mut config = TrainConfig::of_env(env);
    if env == "cmd" || env == "cmd-episodes" {
        config.set_option("command", Value::from("cat"));
        config.set_option("n", Value::from(20));
    }
    if env == "cmd-episodes" {
        config.set_option("state-dim", Value::from(3));
    }
    config
}

fn with_option(env: &str, name: &str, value: Value) -> TrainConfig {
    let mut config = default_for(env);
    config.set_option(name, value);
    config
}

#[test]
fn resolved_fills_the_environments_defaults_and_both_forms_check() {
    let registry = registry();
    for env in registry.names() {
        let config = default_for(env);
        let spec = config.check(&registry).unwrap();
        let entry = registry.get(env).unwrap();
        let learning_rate = entry.default_learning_rate.unwrap_or_else(|| config.policy.default_learning_rate());
        assert_eq!((spec.learning_rate(), spec.k(), spec.entry().name.as_str()), (learning_rate, entry.default_k, env));
        let resolved = spec.into_config();
        assert_eq!((resolved.learning_rate, resolved.k), (Some(learning_rate), Some(entry.default_k)), "{env}");
        // Every option is written out, and nothing else.
        let section = &resolved.env_options[env];
        assert_eq!(section.len(), entry.options.len(), "{env}");
        assert_eq!(resolved.env_options.len(), 1);
        assert_eq!(resolved.check(&registry).unwrap().into_config(), resolved);
    }
    let mut given = TrainConfig { k: Some(3), learning_rate: Some(0.1), ..TrainConfig::of_env("max-coverage") };
    given.set_option("n", Value::from(10));
    let resolved = given.check(&registry).unwrap().into_config();
    assert_eq!((resolved.k, resolved.learning_rate), (Some(3), Some(0.1)));
    assert_eq!(resolved.env_options["max-coverage"]["n"], Value::from(10));
    assert_eq!(resolved.env_options["max-coverage"]["elements"], Value::from(500));
}

#[test]
fn check_refuses_each_value_out_of_range_naming_its_flag_or_option() {
    let registry = registry();
    let knn = TrainConfig::default();
    let cases: Vec<(TrainConfig, &str)> = vec![
        (TrainConfig::of_env("knn-cifar"), "unknown environment \"knn-cifar\"; the environments are: knn-mnist, "),
        (TrainConfig { steps: 0, ..knn.clone() }, "--steps must be at least 1"),
        (TrainConfig { eval_every: 0, ..knn.clone() }, "--eval-every must be at least 1"),
        (TrainConfig { samples: 0, ..knn.clone() }, "--samples must be between 1 and 10000, got 0"),
        (TrainConfig { samples: usize::MAX, ..knn.clone() }, "--samples must be between 1 and 10000"),
        (TrainConfig { batch_size: 0, ..knn.clone() }, "--batch-size must be between 1 and 1000000, got 0"),
        (
            with_option("knn-mnist", "candidates", Value::from(1u64 << 40)),
            "knn-mnist option candidates: must be between 1 and 1000000",
        ),
        (
            with_option("knn-mnist", "neighbours", Value::from(5)),
            "knn-mnist has no option \"neighbours\"; its options are: candidates, embedding-dim",
        ),
        (
            with_option("feature-selection-knn-mnist", "references", Value::from(0)),
            "option references: must be between 1",
        ),
        (with_option("max-coverage", "elements", Value::from(0)), "max-coverage option elements: must be between 1"),
        (
            with_option("max-coverage", "n", Value::from(0)),
            "max-coverage option n: must be between 1 and 1000000, got 0",
        ),
        (with_option("cmd", "n", Value::from(u64::MAX)), "cmd option n: must be between 1 and 1000000"),
        (
            TrainConfig::of_env("cmd"),
            "cmd option command: must be given: --env-option command=... (or --reward-cmd ...)",
        ),
        (with_option("vae-mnist", "groups", Value::from(0)), "vae-mnist option groups: must be between 1 and 100000"),
        (
            {
                let mut c = with_option("vae-mnist", "groups", Value::from(1000));
                c.set_option("items", Value::from(1000));
                c
            },
            "groups × items must be at most 100000 (the VAE's code), got 1000 × 1000",
        ),
        (TrainConfig { hidden: 0, ..knn.clone() }, "--hidden must be between 1 and 65536, got 0"),
        (with_option("cmd", "context-dim", Value::from(1 << 20)), "cmd option context-dim: must be between 1"),
        (
            with_option("knn-mnist", "embedding-dim", Value::from(0)),
            "option embedding-dim: must be between 1 and 65536",
        ),
        (
            with_option("sensor-placement-mnist", "modes", Value::from(785)),
            "option modes: must be between 1 and 784, got 785",
        ),
        (
            with_option("feature-selection-knn-mnist", "neighbours", Value::from(1001)),
            "neighbours must be between 1 and the 1000 references (option references), got 1001",
        ),
        (TrainConfig { learning_rate: Some(f64::NAN), ..knn.clone() }, "--lr must be positive and finite, got NaN"),
        (TrainConfig { learning_rate: Some(0.0), ..knn.clone() }, "--lr must be positive and finite, got 0"),
        (TrainConfig { beta1: 1.0, ..knn.clone() }, "beta1 must be in [0, 1), got 1"),
        (TrainConfig { beta2: f64::NAN, ..knn.clone() }, "beta2 must be in [0, 1), got NaN"),
        (
            with_option("cmd", "timeout", Value::from(1e20)),
            "cmd option timeout: must be positive and at most 1000000, got 100000000000000000000",
        ),
        (with_option("cmd", "timeout", Value::from("NaN")), "cmd option timeout: must be positive"),
        (with_option("cmd", "timeout", Value::from(0.0)), "cmd option timeout: must be positive"),
        // The environment's name names the run's folder: the one rule for names.
        (
            with_option("cmd", "name", Value::from("../x")),
            "the environment's name in the configuration: the name \"../x\"",
        ),
        (TrainConfig { device: "tpu".to_owned(), ..knn.clone() }, r#"device "tpu" in the configuration: unknown"#),
        (
            TrainConfig { k: Some(0), ..knn.clone() },
            "k = 0 is out of range for n = 128 candidates (option candidates): -k must be between 1 and 128",
        ),
        (TrainConfig { k: Some(129), ..knn.clone() }, "k = 129 is out of range for n = 128 candidates"),
        (TrainConfig { k: Some(785), ..default_for("feature-selection-mnist") }, "n = 784 pixels"),
        (TrainConfig { k: Some(0), ..default_for("feature-selection-knn-mnist") }, "k = 0 is out of range for n = 784"),
        (TrainConfig { k: Some(785), ..default_for("sensor-placement-mnist") }, "n = 784 pixels"),
        (TrainConfig { k: Some(11), ..default_for("vae-mnist") }, "n = 10 items per subset (option items)"),
        (TrainConfig { k: Some(21), ..default_for("cmd") }, "k = 21 is out of range for n = 20 items (option n)"),
        (TrainConfig { k: Some(257), ..default_for("sensor-placement-synthetic") }, "n = 256 locations"),
        (
            TrainConfig { k: Some(51), ..default_for("max-coverage") },
            "n = 50 sets (option n): -k must be between 1 and 50",
        ),
        (
            TrainConfig { policy: PolicyName::Mlp, ..knn.clone() },
            "--policy applies to the black-box and custom environments",
        ),
        (
            TrainConfig { samples: 10_000, batch_size: 1_000_000, ..knn.clone() },
            "a step's actions would hold --samples × rows × n = 10000 × 1000000 × 128 = 1280000000000 entries",
        ),
    ];
    let mut temperatures = knn.clone();
    temperatures.estimator_options.temperature = f64::INFINITY;
    let mut lambda = knn.clone();
    lambda.estimator_options.imle_lambda = 0.0;
    let mut noise = knn.clone();
    noise.estimator_options.imle_temperature = -1.0;
    let options = [
        (temperatures, "--temperature must be positive and finite, got inf"),
        (lambda, "--imle-lambda must be positive and finite, got 0"),
        (noise, "--imle-temperature must be non-negative and finite, got -1"),
    ];
    for (config, phrase) in cases.into_iter().chain(options) {
        let message = format!("{:#}", config.check(&registry).unwrap_err());
        assert!(message.contains(phrase), "{phrase:?} not in {message:?}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}

#[test]
fn check_accepts_the_edges() {
    let registry = registry();
    let mut no_noise = TrainConfig::default();
    no_noise.estimator_options.imle_temperature = 0.0;
    let mut one_of_one = TrainConfig { k: Some(1), ..default_for("max-coverage") };
    one_of_one.set_option("n", Value::from(1));
    // A file may hold the options of other environments too.
    let mut several = TrainConfig::default();
    several.env_options.insert("max-coverage".to_owned(), BTreeMap::from([("n".to_owned(), Value::from(7))]));
    for config in [
        no_noise,
        TrainConfig { k: Some(128), samples: MAX_SAMPLES, ..TrainConfig::default() },
        with_option("cmd", "timeout", Value::from(1e6)),
        one_of_one,
        several,
        TrainConfig { device: "cuda:3".to_owned(), ..TrainConfig::default() },
    ] {
        config.check(&registry).unwrap();
    }
}

#[test]
fn configurations_of_earlier_versions_move_their_options_to_the_environments_section() {
    let registry = registry();
    let old = r#"{"env": "max-coverage", "n": 12, "coverage_elements": 40, "coverage_seed": 3,
                  "sensor_modes": 10, "candidates": 128, "reward_cmd": null, "context_dim": null, "k": 2}"#;
    let config = TrainConfig::from_json(old, &registry).unwrap();
    let section = &config.env_options["max-coverage"];
    assert_eq!(
        (section["n"].clone(), section["elements"].clone(), section["seed"].clone()),
        (12.into(), 40.into(), 3.into())
    );
    assert_eq!(section.len(), 3);
    assert_eq!(config.check(&registry).unwrap().into_config().env_options["max-coverage"]["n"], Value::from(12));
    // A key no version had is still refused.
    assert!(TrainConfig::from_json(r#"{"env": "max-coverage", "sets": 3}"#, &registry).is_err());
}

#[test]
fn changed_flags_names_environment_options_by_their_flag() {
    let registry = registry();
    let recorded = default_for("max-coverage").check(&registry).unwrap().into_config();
    let asked = with_option("max-coverage", "n", Value::from(9)).check(&registry).unwrap().into_config();
    assert_eq!(changed_flags(&recorded, &asked, "the run").unwrap(), "--env-option n (the run has 50, asked 9)");
}

/// Another environment is named once, not with the other environment's options as
/// changed to nothing.
#[test]
fn changed_flags_name_another_environment_without_its_options() {
    let registry = registry();
    let recorded = default_for("max-coverage").check(&registry).unwrap().into_config();
    let asked = default_for("sensor-placement-synthetic").check(&registry).unwrap().into_config();
    let changed = changed_flags(&recorded, &asked, "the run").unwrap();
    assert!(
        changed.starts_with("--env (the run has \"max-coverage\", asked \"sensor-placement-synthetic\")"),
        "{changed}"
    );
    assert!(!changed.contains("--env-option") && !changed.contains("null"), "{changed}");
}

/// A `config.json` that gives a key twice is refused, not read as its last value.
#[test]
fn a_key_given_twice_is_refused() {
    let error = TrainConfig::from_json(r#"{"steps": 5, "steps": 6}"#, &registry()).unwrap_err().to_string();
    assert!(error.contains("the key \"steps\" is given twice"), "{error}");
}
