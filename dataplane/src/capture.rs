//! Capture files as a [`Source`] and as [`Sink`]s: pcap and pcapng in (Ethernet link
//! type only), classic pcap out (nanosecond timestamps), one file per verdict.
//!
//! A frame captured with a snapshot length shorter than the frame runs as the bytes
//! the capture holds, as a replay tool sends them.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use pcap_file::pcap::{PcapHeader, PcapReader};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, Endianness, TsResolution};

use crate::error::{CaptureError, DataplaneError};
use crate::io::{FrameMeta, OutFrame, Recv, Sink, Source};
use crate::worker::Verdict;

enum Reader {
    Pcap(PcapReader<BufReader<File>>),
    PcapNg(PcapNgReader<BufReader<File>>),
}

/// A pcap or pcapng file, read frame by frame in file order.
pub struct CaptureSource {
    path: PathBuf,
    reader: Reader,
    /// Frames read so far.
    frames: u64,
}

impl std::fmt::Debug for CaptureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSource")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish()
    }
}

fn link_name(link: DataLink) -> String {
    format!("{} ({link:?})", u32::from(link))
}

impl CaptureSource {
    /// Opens `path`, telling pcap from pcapng by its first bytes. A pcap whose link
    /// type is not Ethernet is refused here; a pcapng frame on a non-Ethernet
    /// interface is refused when it is read.
    pub fn open(path: &Path) -> Result<CaptureSource, CaptureError> {
        let open_err = |source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(open_err)?;
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match file.read(&mut magic[got..]).map_err(open_err)? {
                0 => break,
                n => got += n,
            }
        }
        let file = File::open(path).map_err(open_err)?;
        let read_err = |source| CaptureError::Read {
            path: path.to_path_buf(),
            frame: 0,
            source,
        };
        let reader = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d] => {
                let r = PcapReader::new(BufReader::new(file)).map_err(read_err)?;
                let link = r.header().datalink;
                if link != DataLink::ETHERNET {
                    return Err(CaptureError::NotEthernet {
                        path: path.to_path_buf(),
                        link_type: link_name(link),
                    });
                }
                Reader::Pcap(r)
            }
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                Reader::PcapNg(PcapNgReader::new(BufReader::new(file)).map_err(read_err)?)
            }
            _ => {
                return Err(CaptureError::NotACapture {
                    path: path.to_path_buf(),
                    magic: magic[..got]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                })
            }
        };
        Ok(CaptureSource {
            path: path.to_path_buf(),
            reader,
            frames: 0,
        })
    }

    /// Frames read so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The next frame into `buf`, or `None` at the end.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Result<Option<FrameMeta>, CaptureError> {
        let frame = self.frames;
        let read_err = |source| CaptureError::Read {
            path: self.path.clone(),
            frame,
            source,
        };
        let meta = match &mut self.reader {
            Reader::Pcap(r) => match r.next_packet() {
                None => return Ok(None),
                Some(p) => {
                    let p = p.map_err(read_err)?;
                    buf.clear();
                    buf.extend_from_slice(&p.data);
                    let mut m = FrameMeta::new(p.timestamp, p.data.len());
                    m.orig_len = p.orig_len;
                    m
                }
            },
            Reader::PcapNg(r) => loop {
                let block = match r.next_block() {
                    None => return Ok(None),
                    Some(b) => b.map_err(read_err)?,
                };
                let (interface, timestamp, orig_len) = match &block {
                    Block::EnhancedPacket(p) => {
                        buf.clear();
                        buf.extend_from_slice(&p.data);
                        (p.interface_id, p.timestamp, p.original_len)
                    }
                    Block::SimplePacket(p) => {
                        buf.clear();
                        buf.extend_from_slice(&p.data);
                        (0, Default::default(), p.original_len)
                    }
                    _ => continue,
                };
                drop(block);
                let Some(idb) = r.interfaces().get(interface as usize) else {
                    return Err(CaptureError::NoInterface {
                        path: self.path.clone(),
                        frame,
                        interface,
                    });
                };
                if idb.linktype != DataLink::ETHERNET {
                    return Err(CaptureError::NotEthernet {
                        path: self.path.clone(),
                        link_type: link_name(idb.linktype),
                    });
                }
                let mut m = FrameMeta::new(timestamp, buf.len());
                m.orig_len = orig_len;
                break m;
            },
        };
        self.frames += 1;
        Ok(Some(meta))
    }
}

impl Source for CaptureSource {
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Recv, DataplaneError> {
        Ok(match self.next_frame(buf)? {
            Some(m) => Recv::Frame(m),
            None => Recv::End,
        })
    }
}

/// A classic pcap file being written (Ethernet, nanosecond timestamps, native byte
/// order, snapshot length 65535). The file header comes from pcap-file; the records
/// (16 bytes and the frame) are written here, so that the buffer can be flushed.
pub struct PcapSink {
    path: PathBuf,
    writer: BufWriter<File>,
    frames: u64,
}

impl std::fmt::Debug for PcapSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapSink")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish()
    }
}

/// The snapshot length written in the header: frames are never longer.
const SNAPLEN: u32 = 65535;

impl PcapSink {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<PcapSink, CaptureError> {
        let file = File::create(path).map_err(|source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            snaplen: SNAPLEN,
            ts_resolution: TsResolution::NanoSecond,
            endianness: if cfg!(target_endian = "little") {
                Endianness::Little
            } else {
                Endianness::Big
            },
            ..Default::default()
        };
        let mut writer = BufWriter::with_capacity(64 << 10, file);
        header
            .write_to(&mut writer)
            .map_err(|source| CaptureError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(PcapSink {
            path: path.to_path_buf(),
            writer,
            frames: 0,
        })
    }

    /// Writes one frame captured at `meta.timestamp`.
    pub fn write(&mut self, data: &[u8], meta: &FrameMeta) -> Result<(), CaptureError> {
        let io_err = |e: std::io::Error| CaptureError::Write {
            path: self.path.clone(),
            source: pcap_file::PcapError::IoError(e),
        };
        let len = data.len().min(SNAPLEN as usize);
        let secs = u32::try_from(meta.timestamp.as_secs()).unwrap_or(u32::MAX);
        let mut rec = [0u8; 16];
        for (i, v) in [
            secs,
            meta.timestamp.subsec_nanos(),
            len as u32,
            data.len() as u32,
        ]
        .into_iter()
        .enumerate()
        {
            rec[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
        }
        self.writer.write_all(&rec).map_err(io_err)?;
        self.writer.write_all(&data[..len]).map_err(io_err)?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }
}

impl Sink for PcapSink {
    fn send(&mut self, frame: &OutFrame<'_>) -> Result<(), DataplaneError> {
        Ok(self.write(frame.data, &frame.frame)?)
    }

    fn flush(&mut self) -> Result<(), DataplaneError> {
        self.writer.flush().map_err(|e| DataplaneError::Sink {
            name: self.path.display().to_string(),
            reason: e.to_string(),
        })
    }
}

/// One sink per verdict (each optional): where a replay sends each frame.
#[derive(Default)]
pub struct VerdictSinks {
    sinks: [Option<Box<dyn Sink + Send>>; 6],
}

impl std::fmt::Debug for VerdictSinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set: Vec<&str> = Verdict::ALL
            .iter()
            .filter(|v| self.sinks[Self::slot(**v)].is_some())
            .map(|v| v.name())
            .collect();
        f.debug_struct("VerdictSinks").field("set", &set).finish()
    }
}

/// The output files of [`VerdictSinks::pcap_dir`], by verdict; frames that did not
/// run (runts and oversize frames) go to `skipped.pcap`.
pub const OUT_FILES: [(&str, &[Verdict]); 6] = [
    ("pass.pcap", &[Verdict::Pass]),
    ("tx.pcap", &[Verdict::Tx]),
    ("drop.pcap", &[Verdict::Drop]),
    ("aborted.pcap", &[Verdict::Aborted]),
    ("redirect.pcap", &[Verdict::Redirect]),
    ("skipped.pcap", &[Verdict::Runt, Verdict::Oversize]),
];

impl VerdictSinks {
    fn slot(v: Verdict) -> usize {
        match v {
            Verdict::Pass => 0,
            Verdict::Tx => 1,
            Verdict::Drop => 2,
            Verdict::Aborted => 3,
            Verdict::Redirect => 4,
            Verdict::Runt | Verdict::Oversize => 5,
        }
    }

    /// Sends frames of `verdict` to `sink` (runts and oversize frames share one).
    pub fn set(&mut self, verdict: Verdict, sink: Box<dyn Sink + Send>) {
        self.sinks[Self::slot(verdict)] = Some(sink);
    }

    /// [`OUT_FILES`] in `dir` (created if missing), every file created even when no
    /// frame goes there.
    pub fn pcap_dir(dir: &Path) -> Result<VerdictSinks, CaptureError> {
        std::fs::create_dir_all(dir).map_err(|source| CaptureError::OutDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut sinks = VerdictSinks::default();
        for (name, verdicts) in OUT_FILES {
            sinks.set(verdicts[0], Box::new(PcapSink::create(&dir.join(name))?));
        }
        Ok(sinks)
    }

    /// Sends `frame` to the sink of its verdict, if there is one.
    pub fn send(&mut self, frame: &OutFrame<'_>) -> Result<(), DataplaneError> {
        match &mut self.sinks[Self::slot(frame.verdict)] {
            Some(s) => s.send(frame),
            None => Ok(()),
        }
    }

    /// Flushes every sink.
    pub fn flush(&mut self) -> Result<(), DataplaneError> {
        for s in self.sinks.iter_mut().flatten() {
            s.flush()?;
        }
        Ok(())
    }
}
