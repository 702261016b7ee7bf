//! The `--device` option: which libtorch device tensors live on.
//!
//! [`DeviceSpec`] is what the user wrote (`auto`, `cpu`, `cuda` or `cuda:N`); parsing it
//! ([`FromStr`]) only checks the spelling, and [`DeviceSpec::resolve`] turns it into a
//! [`tch::Device`], failing with a clear message when the machine has no such device.

use std::fmt;
use std::str::FromStr;

use anyhow::bail;
use tch::{Cuda, Device};

/// A device as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceSpec {
    /// The first CUDA device when CUDA is available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA device (`cuda`); an error when CUDA is not available.
    Cuda,
    /// CUDA device `N` (`cuda:N`); an error when the machine has `N` or fewer devices.
    CudaIndex(usize),
}

impl DeviceSpec {
    /// The device to use on this machine.
    ///
    /// # Errors
    /// When CUDA is asked for (`cuda`, `cuda:N`) but is not available, or device `N`
    /// does not exist.
    pub fn resolve(&self) -> anyhow::Result<Device> {
        match *self {
            DeviceSpec::Auto => Ok(Device::cuda_if_available()),
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda => {
                if !Cuda::is_available() {
                    bail!(
                        "CUDA was requested (--device cuda) but no CUDA device is available; \
                         use --device cpu or auto"
                    );
                }
                Ok(Device::Cuda(0))
            }
            DeviceSpec::CudaIndex(index) => {
                let count = Cuda::device_count().max(0);
                if !Cuda::is_available() || index as u64 >= count as u64 {
                    let devices = match count {
                        0 => "no CUDA device".to_owned(),
                        1 => "1 CUDA device (cuda:0)".to_owned(),
                        count => format!("{count} CUDA devices (cuda:0 to cuda:{})", count - 1),
                    };
                    bail!(
                        "CUDA device {index} was requested (--device cuda:{index}) but this machine has {devices}; \
                         use --device cpu or auto"
                    );
                }
                Ok(Device::Cuda(index))
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda => f.write_str("cuda"),
            DeviceSpec::CudaIndex(index) => write!(f, "cuda:{index}"),
        }
    }
}

/// A `--device` value that is not `auto`, `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDeviceError {
    given: String,
}

impl fmt::Display for ParseDeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown device {:?}: expected auto, cpu, cuda or cuda:N (N a device index such as 0)", self.given)
    }
}

impl std::error::Error for ParseDeviceError {}

impl FromStr for DeviceSpec {
    type Err = ParseDeviceError;

    /// Parses `auto`, `cpu`, `cuda` or `cuda:N` (ASCII case-insensitive, surrounding
    /// whitespace ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let spec = match lower.as_str() {
            "auto" => Some(DeviceSpec::Auto),
            "cpu" => Some(DeviceSpec::Cpu),
            "cuda" => Some(DeviceSpec::Cuda),
            other => other
                .strip_prefix("cuda:")
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse().ok())
                .map(DeviceSpec::CudaIndex),
        };
        spec.ok_or_else(|| ParseDeviceError { given: s.to_owned() })
    }
}

/// A device's name as `--device` spells it: `cpu`, `cuda:0`, ...
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_owned(),
        Device::Cuda(index) => format!("cuda:{index}"),
        Device::Mps => "mps".to_owned(),
        Device::Vulkan => "vulkan".to_owned(),
    }
}

/// This machine's CPU model, as `/proc/cpuinfo` names it (`None` where it does not say).
pub fn cpu_model() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        assert_eq!("auto".parse(), Ok(DeviceSpec::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("CPU".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!(" cuda ".parse(), Ok(DeviceSpec::Cuda));
        assert_eq!("cuda:0".parse(), Ok(DeviceSpec::CudaIndex(0)));
        assert_eq!("Cuda:12".parse(), Ok(DeviceSpec::CudaIndex(12)));
    }

    #[test]
    fn rejects_anything_else_with_a_clear_message() {
        for bad in [
            "",
            "gpu",
            "cuda:",
            "cuda:-1",
            "cuda:+1",
            "cuda:x",
            "cuda:1:2",
            "cuda0",
            "cpu:0",
            "cuda:99999999999999999999999",
        ] {
            let error = bad.parse::<DeviceSpec>().unwrap_err();
            let message = error.to_string();
            assert!(message.contains("expected auto, cpu, cuda or cuda:N"), "{bad:?}: {message}");
            assert!(message.contains(&format!("{bad:?}")), "{bad:?}: {message}");
        }
    }

    #[test]
    fn display_round_trips() {
        for spec in [DeviceSpec::Auto, DeviceSpec::Cpu, DeviceSpec::Cuda, DeviceSpec::CudaIndex(3)] {
            assert_eq!(spec.to_string().parse(), Ok(spec));
        }
    }

    #[test]
    fn cpu_and_auto_always_resolve() {
        assert_eq!(DeviceSpec::Cpu.resolve().unwrap(), Device::Cpu);
        let auto = DeviceSpec::Auto.resolve().unwrap();
        assert_eq!(auto, if Cuda::is_available() { Device::Cuda(0) } else { Device::Cpu });
    }

    #[test]
    fn missing_cuda_devices_are_clear_errors() {
        let count = Cuda::device_count();
        let error = DeviceSpec::CudaIndex(count as usize + 7).resolve().unwrap_err().to_string();
        assert!(error.contains(&format!("CUDA device {} was requested", count + 7)), "{error}");
        assert!(error.contains("use --device cpu or auto"), "{error}");
        if !Cuda::is_available() {
            let error = DeviceSpec::Cuda.resolve().unwrap_err().to_string();
            assert!(error.contains("no CUDA device is available"), "{error}");
        }
    }

    #[test]
    fn device_names() {
        assert_eq!(device_name(Device::Cpu), "cpu");
        assert_eq!(device_name(Device::Cuda(1)), "cuda:1");
    }
}
