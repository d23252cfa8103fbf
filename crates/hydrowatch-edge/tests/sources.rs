//! The hardware sources against real counterparts: a serial port through a pseudo-terminal and
//! a Modbus TCP device served in-process by tokio-modbus.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hydrowatch_config::Config;
use hydrowatch_edge::sources::{self, Incoming, Intake, SourceCounters};
use tokio::sync::{mpsc, watch};

fn config(text: &str) -> Config {
    Config::parse(
        &format!("[device]\nid = \"t\"\ntimezone = \"UTC\"\n{text}"),
        "t.toml",
    )
    .unwrap()
}

/// Runs the configuration's only source until `readings` readings arrived (or 20 s passed);
/// returns them and the source counters.
async fn collect(
    config: Config,
    readings: usize,
    meanwhile: impl Future<Output = ()> + Send + 'static,
) -> (Vec<Incoming>, Arc<SourceCounters>) {
    let (tx, mut rx) = mpsc::channel(64);
    let (stop_tx, stop) = watch::channel(false);
    let counters = Arc::new(SourceCounters::default());
    let intake = Intake {
        tx,
        stop,
        tz: config.device.timezone,
        series: Arc::new(config.series.iter().map(|s| s.name.clone()).collect()),
        newest: Arc::default(),
        counters: counters.clone(),
    };
    let source = sources::from_config(&config).pop().unwrap();
    let running = tokio::spawn(source.run(intake));
    tokio::spawn(meanwhile);
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < readings {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(batch)) => got.extend(batch.readings),
            _ => break,
        }
    }
    stop_tx.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), running).await;
    (got, counters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_lines_through_a_pseudo_terminal_and_garbled_ones_counted() {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes the two descriptors; no name, termios or size are passed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0);
    // SAFETY: `slave` is an open descriptor; ttyname returns a static buffer read at once.
    let path = unsafe { std::ffi::CStr::from_ptr(libc::ttyname(slave)) }
        .to_string_lossy()
        .into_owned();
    let config = config(&format!(
        "[[source]]\nkind = \"serial\"\nport = \"{path}\"\nbaud = 19200\ndelimiter = \";\"\nfields = [\"time\", \"flow_rate\", \"_\", \"pressure\"]\n"
    ));
    let writer = async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lines: &[&[u8]] = &[
            b"2024-07-01 00:00;101.5;x;4.25\r\n",
            b"\xff\xfe\x81garbled\r\n",
            b"2024-07-01 00:01;102.0\r\n",
            b"2024-07-01 00:02;103.0;x;\r\n",
        ];
        for line in lines {
            // SAFETY: `master` is open; the buffer is valid for its length.
            let n = unsafe { libc::write(master, line.as_ptr().cast(), line.len()) };
            assert_eq!(n, line.len() as isize);
        }
    };
    let (got, counters) = collect(config, 3, writer).await;
    let values: Vec<(String, f64)> = got.iter().map(|r| (r.series.clone(), r.value)).collect();
    assert_eq!(
        values,
        vec![
            ("flow_rate".into(), 101.5),
            ("pressure".into(), 4.25),
            ("flow_rate".into(), 103.0)
        ]
    );
    assert_eq!(got[0].ts, 1_719_792_000);
    assert_eq!(
        counters
            .bad_input
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    // SAFETY: both descriptors are open and closed once.
    unsafe {
        libc::close(master);
        libc::close(slave);
    }
}

/// A Modbus device: holding registers 0-1 hold 118.25 as f32, input register 5 holds 425.
struct Device;

impl tokio_modbus::server::Service for Device {
    type Request = tokio_modbus::Request<'static>;
    type Response = tokio_modbus::Response;
    type Exception = tokio_modbus::ExceptionCode;
    type Future = std::future::Ready<Result<Self::Response, Self::Exception>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let bits = 118.25f32.to_bits();
        let holding: HashMap<u16, u16> = [(0, (bits >> 16) as u16), (1, bits as u16)].into();
        let input: HashMap<u16, u16> = [(5, 425)].into();
        let read = |table: &HashMap<u16, u16>,
                    addr: u16,
                    n: u16|
         -> Result<Vec<u16>, tokio_modbus::ExceptionCode> {
            (addr..addr + n)
                .map(|a| {
                    table
                        .get(&a)
                        .copied()
                        .ok_or(tokio_modbus::ExceptionCode::IllegalDataAddress)
                })
                .collect()
        };
        std::future::ready(match req {
            tokio_modbus::Request::ReadHoldingRegisters(a, n) => {
                read(&holding, a, n).map(tokio_modbus::Response::ReadHoldingRegisters)
            }
            tokio_modbus::Request::ReadInputRegisters(a, n) => {
                read(&input, a, n).map(tokio_modbus::Response::ReadInputRegisters)
            }
            _ => Err(tokio_modbus::ExceptionCode::IllegalFunction),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_tcp_registers_are_polled_decoded_and_scaled() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio_modbus::server::tcp::Server::new(listener);
    tokio::spawn(async move {
        let _ = server
            .serve(
                &|stream, _| async move { Ok(Some((Device, stream))) },
                |e| panic!("modbus server: {e}"),
            )
            .await;
    });
    let config = config(&format!(
        "[[source]]\nkind = \"modbus\"\naddress = \"{addr}\"\ninterval_seconds = 1\ntimeout_ms = 500\n\
         [[source.registers]]\nseries = \"flow_rate\"\naddress = 0\ntype = \"f32\"\n\
         [[source.registers]]\nseries = \"pressure\"\naddress = 5\ntable = \"input\"\nscale = 0.01\n"
    ));
    let (got, counters) = collect(config, 4, async {}).await;
    assert!(got.len() >= 4, "{got:?}");
    assert_eq!(
        (got[0].series.as_str(), got[0].value),
        ("flow_rate", 118.25)
    );
    assert_eq!((got[1].series.as_str(), got[1].value), ("pressure", 4.25));
    assert_eq!(
        got[2].ts - got[0].ts,
        1,
        "one poll a second, stamped with its slot"
    );
    assert_eq!(
        counters.timeouts.load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // A register the device does not have: its exception answer is counted, not fatal.
    let config = config_bad(addr);
    let (got, counters) = collect(config, 1, async {}).await;
    assert!(got.is_empty());
    assert!(counters.timeouts.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

fn config_bad(addr: std::net::SocketAddr) -> Config {
    config(&format!(
        "[[source]]\nkind = \"modbus\"\naddress = \"{addr}\"\ninterval_seconds = 1\ntimeout_ms = 500\n\
         [[source.registers]]\nseries = \"flow_rate\"\naddress = 40\n"
    ))
}
