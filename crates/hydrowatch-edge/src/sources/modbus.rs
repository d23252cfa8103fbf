//! `kind = "modbus"`: registers polled on an interval over Modbus TCP or RTU (tokio-modbus), one
//! register (or pair) per series, value = raw · scale + offset, stamped with the poll's slot
//! (the start of its interval). A poll that times out, an exception answer or a lost connection
//! is logged and counted; the connection is made again at the next poll.

use std::time::Duration;

use hydrowatch_config::{ModbusSource, RegisterConfig, RegisterTable, RegisterType, WordOrder};
use hydrowatch_core::Timestamp;
use tokio_modbus::Slave;
use tokio_modbus::client::{Context, Reader};
use tokio_serial::SerialPortBuilderExt;

use super::{Incoming, Intake, Running, Source};

/// A Modbus source.
pub(super) struct Modbus {
    config: ModbusSource,
}

impl Modbus {
    /// The source of `config`.
    pub(super) fn new(config: ModbusSource) -> Modbus {
        Modbus { config }
    }
}

/// The number a register (pair) encodes, scaled.
pub(super) fn decode(register: &RegisterConfig, words: &[u16]) -> f64 {
    let (hi, lo) = match (register.word_order, words) {
        (_, [w]) => (0, *w),
        (WordOrder::Big, [a, b, ..]) => (*a, *b),
        (WordOrder::Little, [a, b, ..]) => (*b, *a),
        _ => (0, 0),
    };
    let both = (u32::from(hi) << 16) | u32::from(lo);
    let raw = match register.value_type {
        RegisterType::U16 => f64::from(lo),
        RegisterType::I16 => f64::from(lo as i16),
        RegisterType::U32 => f64::from(both),
        RegisterType::I32 => f64::from(both as i32),
        RegisterType::F32 => f64::from(f32::from_bits(both)),
    };
    raw * register.scale + register.offset
}

impl Modbus {
    async fn connect(&self) -> std::io::Result<Context> {
        let slave = Slave(self.config.unit);
        match (&self.config.address, &self.config.port) {
            (Some(addr), _) => {
                let addr = addr.parse().map_err(|_| {
                    std::io::Error::other(format!("address {addr:?} is not an address and port"))
                })?;
                tokio_modbus::client::tcp::connect_slave(addr, slave).await
            }
            (None, Some(port)) => {
                let serial = tokio_serial::new(port.to_string_lossy(), self.config.baud)
                    .open_native_async()
                    .map_err(std::io::Error::other)?;
                Ok(tokio_modbus::client::rtu::attach_slave(serial, slave))
            }
            (None, None) => Err(std::io::Error::other(
                "neither address nor port is configured",
            )),
        }
    }

    /// Reads every register once; the error names the register.
    async fn poll(&self, ctx: &mut Context, at: Timestamp) -> Result<Vec<Incoming>, String> {
        let mut out = Vec::with_capacity(self.config.registers.len());
        let limit = Duration::from_millis(u64::from(self.config.timeout_ms));
        for r in &self.config.registers {
            let words = r.value_type.words();
            let what = format!("register {} ({}, {:?})", r.address, r.series, r.table);
            let call = async {
                match r.table {
                    RegisterTable::Holding => ctx.read_holding_registers(r.address, words).await,
                    RegisterTable::Input => ctx.read_input_registers(r.address, words).await,
                }
            };
            let answer = tokio::time::timeout(limit, call)
                .await
                .map_err(|_| format!("{what}: no answer within {} ms", self.config.timeout_ms))?;
            let values = answer
                .map_err(|e| format!("{what}: {e}"))?
                .map_err(|code| format!("{what}: the device answered with exception {code:?}"))?;
            if values.len() != usize::from(words) {
                return Err(format!(
                    "{what}: {} words where {words} were asked for",
                    values.len()
                ));
            }
            let value = decode(r, &values);
            if !value.is_finite() {
                return Err(format!("{what}: decodes to {value}"));
            }
            out.push(Incoming {
                series: r.series.clone(),
                ts: at,
                value,
            });
        }
        Ok(out)
    }
}

impl Source for Modbus {
    fn name(&self) -> String {
        match (&self.config.address, &self.config.port) {
            (Some(a), _) => format!("modbus tcp {a} unit {}", self.config.unit),
            (_, Some(p)) => format!("modbus rtu {} unit {}", p.display(), self.config.unit),
            _ => "modbus".into(),
        }
    }

    fn run(self: Box<Self>, intake: Intake) -> Running {
        Box::pin(async move {
            let origin = self.name();
            let interval = i64::from(self.config.interval_seconds);
            let mut ctx: Option<Context> = None;
            loop {
                // Poll at the start of each interval of the wall clock.
                let now = chrono::Utc::now().timestamp_millis();
                let next = (now / 1000 / interval + 1) * interval;
                let wait = Duration::from_millis((next * 1000 - now).max(0) as u64);
                if !intake.sleep(wait).await {
                    return Ok(());
                }
                if ctx.is_none() {
                    let limit = Duration::from_millis(u64::from(self.config.timeout_ms));
                    match tokio::time::timeout(limit, self.connect()).await {
                        Ok(Ok(c)) => ctx = Some(c),
                        Ok(Err(e)) => {
                            intake.timeout(&origin, &format!("cannot connect: {e}"));
                            continue;
                        }
                        Err(_) => {
                            intake.timeout(
                                &origin,
                                &format!("no connection within {} ms", self.config.timeout_ms),
                            );
                            continue;
                        }
                    }
                }
                let Some(c) = ctx.as_mut() else { continue };
                match self.poll(c, next).await {
                    Ok(readings) => {
                        if !intake.send(&origin, readings).await {
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        intake.timeout(&origin, &e);
                        ctx = None;
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(value_type: RegisterType, word_order: WordOrder, scale: f64) -> RegisterConfig {
        RegisterConfig {
            series: "x".into(),
            address: 0,
            table: RegisterTable::Holding,
            value_type,
            word_order,
            scale,
            offset: 0.5,
        }
    }

    #[test]
    fn registers_decode_by_type_word_order_and_scale() {
        assert_eq!(
            decode(&reg(RegisterType::U16, WordOrder::Big, 0.1), &[1234]),
            123.9
        );
        assert_eq!(
            decode(&reg(RegisterType::I16, WordOrder::Big, 1.0), &[0xFFFF]),
            -0.5
        );
        assert_eq!(
            decode(&reg(RegisterType::U32, WordOrder::Big, 1.0), &[1, 2]),
            65538.5
        );
        assert_eq!(
            decode(&reg(RegisterType::U32, WordOrder::Little, 1.0), &[2, 1]),
            65538.5
        );
        assert_eq!(
            decode(
                &reg(RegisterType::I32, WordOrder::Big, 1.0),
                &[0xFFFF, 0xFFFE]
            ),
            -1.5
        );
        let bits = 118.25f32.to_bits();
        let words = [(bits >> 16) as u16, bits as u16];
        assert_eq!(
            decode(&reg(RegisterType::F32, WordOrder::Big, 1.0), &words),
            118.75
        );
    }
}
