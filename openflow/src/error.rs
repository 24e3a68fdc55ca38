//! OpenFlow errors: what a switch answers with in an OFPT_ERROR, and what
//! the decoder reports.

use crate::consts::{OFP10_VERSION, et10, et13};

/// An OpenFlow error condition, independent of the wire version. Each maps
/// to the OFPT_ERROR type/code the spec prescribes (see [`OfError::wire`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub enum OfError {
    #[error("OFPHFC_INCOMPATIBLE")]
    HelloIncompatible,
    #[error("OFPBRC_BAD_VERSION")]
    BadVersion,
    #[error("OFPBRC_BAD_TYPE")]
    BadType,
    #[error("OFPBRC_BAD_MULTIPART")]
    BadMultipart,
    #[error("OFPBRC_BAD_EXPERIMENTER")]
    BadExperimenter,
    #[error("OFPBRC_BAD_EXP_TYPE")]
    BadExpType,
    #[error("OFPBRC_EPERM")]
    BadRequestEperm,
    #[error("OFPBRC_BAD_LEN")]
    BadLen,
    #[error("OFPBRC_BUFFER_UNKNOWN")]
    BufferUnknown,
    #[error("OFPBRC_BAD_TABLE_ID")]
    BadRequestTableId,
    #[error("OFPBRC_IS_SLAVE")]
    IsSlave,
    #[error("OFPBRC_BAD_PORT")]
    BadRequestPort,
    #[error("OFPBRC_BAD_PACKET")]
    BadPacket,
    #[error("OFPBAC_BAD_TYPE")]
    BadActionType,
    #[error("OFPBAC_BAD_LEN")]
    BadActionLen,
    #[error("OFPBAC_BAD_EXPERIMENTER")]
    BadActionExperimenter,
    #[error("OFPBAC_BAD_EXP_TYPE")]
    BadActionExpType,
    #[error("OFPBAC_BAD_OUT_PORT")]
    BadOutPort,
    #[error("OFPBAC_BAD_ARGUMENT")]
    BadActionArgument,
    #[error("OFPBAC_BAD_QUEUE")]
    BadQueue,
    #[error("OFPBAC_BAD_OUT_GROUP")]
    BadOutGroup,
    #[error("OFPBAC_MATCH_INCONSISTENT")]
    MatchInconsistent,
    #[error("OFPBAC_BAD_TAG")]
    BadTag,
    #[error("OFPBAC_BAD_SET_TYPE")]
    BadSetType,
    #[error("OFPBAC_BAD_SET_LEN")]
    BadSetLen,
    #[error("OFPBAC_BAD_SET_ARGUMENT")]
    BadSetArgument,
    #[error("OFPBIC_UNKNOWN_INST")]
    UnknownInstruction,
    #[error("OFPBIC_UNSUP_INST")]
    UnsupportedInstruction,
    #[error("OFPBIC_BAD_TABLE_ID")]
    BadInstructionTableId,
    #[error("OFPBIC_BAD_LEN")]
    BadInstructionLen,
    #[error("OFPBMC_BAD_TYPE")]
    BadMatchType,
    #[error("OFPBMC_BAD_LEN")]
    BadMatchLen,
    #[error("OFPBMC_BAD_WILDCARDS")]
    BadWildcards,
    #[error("OFPBMC_BAD_FIELD")]
    BadField,
    #[error("OFPBMC_BAD_VALUE")]
    BadMatchValue,
    #[error("OFPBMC_BAD_MASK")]
    BadMask,
    #[error("OFPBMC_BAD_PREREQ")]
    BadPrereq,
    #[error("OFPBMC_DUP_FIELD")]
    DupField,
    #[error("OFPFMFC_UNKNOWN")]
    FlowModUnknown,
    #[error("OFPFMFC_TABLE_FULL")]
    TableFull,
    #[error("OFPFMFC_BAD_TABLE_ID")]
    BadTableId,
    #[error("OFPFMFC_OVERLAP")]
    Overlap,
    #[error("OFPFMFC_EPERM")]
    FlowModEperm,
    #[error("OFPFMFC_BAD_TIMEOUT")]
    BadTimeout,
    #[error("OFPFMFC_BAD_COMMAND")]
    BadCommand,
    #[error("OFPFMFC_BAD_FLAGS")]
    BadFlags,
    #[error("OFPGMFC_GROUP_EXISTS")]
    GroupExists,
    #[error("OFPGMFC_INVALID_GROUP")]
    InvalidGroup,
    #[error("OFPGMFC_OUT_OF_GROUPS")]
    OutOfGroups,
    #[error("OFPGMFC_CHAINING_UNSUPPORTED")]
    ChainingUnsupported,
    #[error("OFPGMFC_LOOP")]
    GroupLoop,
    #[error("OFPGMFC_UNKNOWN_GROUP")]
    UnknownGroup,
    #[error("OFPGMFC_BAD_TYPE")]
    BadGroupType,
    #[error("OFPGMFC_BAD_COMMAND")]
    BadGroupCommand,
    #[error("OFPGMFC_BAD_BUCKET")]
    BadBucket,
    #[error("OFPGMFC_BAD_WATCH")]
    BadWatch,
    #[error("OFPPMFC_BAD_PORT")]
    PortModBadPort,
    #[error("OFPPMFC_BAD_HW_ADDR")]
    PortModBadHwAddr,
    #[error("OFPPMFC_BAD_CONFIG")]
    PortModBadConfig,
    #[error("OFPQOFC_BAD_PORT")]
    QueueBadPort,
    #[error("OFPRRFC_STALE")]
    RoleStale,
    #[error("OFPRRFC_BAD_ROLE")]
    BadRole,
    #[error("OFPMMFC_UNKNOWN")]
    MeterModUnknown,
    #[error("OFPMMFC_METER_EXISTS")]
    MeterExists,
    #[error("OFPMMFC_INVALID_METER")]
    InvalidMeter,
    #[error("OFPMMFC_UNKNOWN_METER")]
    UnknownMeter,
    #[error("OFPMMFC_BAD_COMMAND")]
    BadMeterCommand,
    #[error("OFPMMFC_BAD_FLAGS")]
    BadMeterFlags,
    #[error("OFPMMFC_BAD_RATE")]
    BadMeterRate,
    #[error("OFPMMFC_BAD_BURST")]
    BadMeterBurst,
    #[error("OFPMMFC_BAD_BAND")]
    BadMeterBand,
    #[error("OFPMMFC_BAD_BAND_VALUE")]
    BadMeterBandValue,
    #[error("OFPMMFC_OUT_OF_METERS")]
    OutOfMeters,
    #[error("OFPMMFC_OUT_OF_BANDS")]
    OutOfBands,
    #[error("OFPBPC_BAD_TYPE")]
    BadPropertyType,
    #[error("OFPBPC_BAD_LEN")]
    BadPropertyLen,
    #[error("OFPBPC_BAD_VALUE")]
    BadPropertyValue,
    #[error("OFPACFC_INVALID")]
    AsyncConfigInvalid,
    #[error("OFPBFC_UNKNOWN")]
    BundleUnknown,
    #[error("OFPBFC_EPERM")]
    BundleEperm,
    #[error("OFPBFC_BAD_ID")]
    BundleBadId,
    #[error("OFPBFC_BUNDLE_EXIST")]
    BundleExists,
    #[error("OFPBFC_BUNDLE_CLOSED")]
    BundleClosed,
    #[error("OFPBFC_OUT_OF_BUNDLES")]
    OutOfBundles,
    #[error("OFPBFC_BAD_TYPE")]
    BundleBadType,
    #[error("OFPBFC_BAD_FLAGS")]
    BundleBadFlags,
    #[error("OFPBFC_MSG_BAD_LEN")]
    BundleMsgBadLen,
    #[error("OFPBFC_MSG_BAD_XID")]
    BundleMsgBadXid,
    #[error("OFPBFC_MSG_UNSUP")]
    BundleMsgUnsup,
    #[error("OFPBFC_MSG_CONFLICT")]
    BundleMsgConflict,
    #[error("OFPBFC_MSG_TOO_MANY")]
    BundleMsgTooMany,
    #[error("OFPBFC_MSG_FAILED")]
    BundleMsgFailed,
    #[error("OFPBFC_TIMEOUT")]
    BundleTimeout,
    #[error("OFPBFC_BUNDLE_IN_PROGRESS")]
    BundleInProgress,
    /// Open vSwitch's "the switch cannot resume paused packets".
    #[error("NXR_NOT_SUPPORTED")]
    ResumeNotSupported,
    /// Geneve TLV table mod failures (Open vSwitch's `NXTTMFC_*`).
    #[error("NXTTMFC_BAD_COMMAND")]
    TlvBadCommand,
    #[error("NXTTMFC_BAD_OPT_LEN")]
    TlvBadOptLen,
    #[error("NXTTMFC_BAD_FIELD_IDX")]
    TlvBadFieldIdx,
    #[error("NXTTMFC_TABLE_FULL")]
    TlvTableFull,
    #[error("NXTTMFC_ALREADY_MAPPED")]
    TlvAlreadyMapped,
    #[error("NXTTMFC_DUP_ENTRY")]
    TlvDupEntry,
    #[error("NXTTMFC_INVALID_TLV_DEL")]
    TlvInvalidDel,
    /// A flow names `tun_metadataN` that the bridge's TLV map does not map
    /// (Open vSwitch's NXFMFC_INVALID_TLV_FIELD).
    #[error("NXFMFC_INVALID_TLV_FIELD")]
    InvalidTlvField,
    /// An error this crate has no name for (as received from a peer).
    #[error("error type {err_type} code {code}")]
    Other { err_type: u16, code: u16 },
}

const ALL: &[OfError] = &[
    OfError::HelloIncompatible,
    OfError::BadVersion,
    OfError::BadType,
    OfError::BadMultipart,
    OfError::BadExperimenter,
    OfError::BadExpType,
    OfError::BadRequestEperm,
    OfError::BadLen,
    OfError::BufferUnknown,
    OfError::BadRequestTableId,
    OfError::IsSlave,
    OfError::BadRequestPort,
    OfError::BadPacket,
    OfError::BadActionType,
    OfError::BadActionLen,
    OfError::BadActionExperimenter,
    OfError::BadActionExpType,
    OfError::BadOutPort,
    OfError::BadActionArgument,
    OfError::BadQueue,
    OfError::BadOutGroup,
    OfError::MatchInconsistent,
    OfError::BadTag,
    OfError::BadSetType,
    OfError::BadSetLen,
    OfError::BadSetArgument,
    OfError::UnknownInstruction,
    OfError::UnsupportedInstruction,
    OfError::BadInstructionTableId,
    OfError::BadInstructionLen,
    OfError::BadMatchType,
    OfError::BadMatchLen,
    OfError::BadWildcards,
    OfError::BadField,
    OfError::BadMatchValue,
    OfError::BadMask,
    OfError::BadPrereq,
    OfError::DupField,
    OfError::FlowModUnknown,
    OfError::TableFull,
    OfError::BadTableId,
    OfError::Overlap,
    OfError::FlowModEperm,
    OfError::BadTimeout,
    OfError::BadCommand,
    OfError::BadFlags,
    OfError::GroupExists,
    OfError::InvalidGroup,
    OfError::OutOfGroups,
    OfError::ChainingUnsupported,
    OfError::GroupLoop,
    OfError::UnknownGroup,
    OfError::BadGroupType,
    OfError::BadGroupCommand,
    OfError::BadBucket,
    OfError::BadWatch,
    OfError::PortModBadPort,
    OfError::PortModBadHwAddr,
    OfError::PortModBadConfig,
    OfError::QueueBadPort,
    OfError::RoleStale,
    OfError::BadRole,
    OfError::MeterModUnknown,
    OfError::MeterExists,
    OfError::InvalidMeter,
    OfError::UnknownMeter,
    OfError::BadMeterCommand,
    OfError::BadMeterFlags,
    OfError::BadMeterRate,
    OfError::BadMeterBurst,
    OfError::BadMeterBand,
    OfError::BadMeterBandValue,
    OfError::OutOfMeters,
    OfError::OutOfBands,
    OfError::BadPropertyType,
    OfError::BadPropertyLen,
    OfError::BadPropertyValue,
    OfError::AsyncConfigInvalid,
    OfError::BundleUnknown,
    OfError::BundleEperm,
    OfError::BundleBadId,
    OfError::BundleExists,
    OfError::BundleClosed,
    OfError::OutOfBundles,
    OfError::BundleBadType,
    OfError::BundleBadFlags,
    OfError::BundleMsgBadLen,
    OfError::BundleMsgBadXid,
    OfError::BundleMsgUnsup,
    OfError::BundleMsgConflict,
    OfError::BundleMsgTooMany,
    OfError::BundleMsgFailed,
    OfError::BundleTimeout,
    OfError::BundleInProgress,
    OfError::ResumeNotSupported,
    OfError::TlvBadCommand,
    OfError::TlvBadOptLen,
    OfError::TlvBadFieldIdx,
    OfError::TlvTableFull,
    OfError::TlvAlreadyMapped,
    OfError::TlvDupEntry,
    OfError::TlvInvalidDel,
    OfError::InvalidTlvField,
];

/// Where an error lives on the wire: a standard (type, code), or an
/// experimenter error (`OFPET_EXPERIMENTER`, a 16-bit code, then the
/// experimenter id at the start of the error's data).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WireError {
    Std(u16, u16),
    Experimenter { code: u16, experimenter: u32 },
}

/// The bundle failures (`OFPBFC_*`) in code order: OpenFlow 1.4 numbers
/// them from 0 under `OFPET_BUNDLE_FAILED`, the 1.3 ONF extension from
/// 2300 as ONF experimenter errors.
const BUNDLE_ERRORS: [OfError; 16] = [
    OfError::BundleUnknown,
    OfError::BundleEperm,
    OfError::BundleBadId,
    OfError::BundleExists,
    OfError::BundleClosed,
    OfError::OutOfBundles,
    OfError::BundleBadType,
    OfError::BundleBadFlags,
    OfError::BundleMsgBadLen,
    OfError::BundleMsgBadXid,
    OfError::BundleMsgUnsup,
    OfError::BundleMsgConflict,
    OfError::BundleMsgTooMany,
    OfError::BundleMsgFailed,
    OfError::BundleTimeout,
    OfError::BundleInProgress,
];

/// First ONF experimenter code of the 1.3 bundle errors.
const ONF_BUNDLE_ERROR_BASE: u16 = 2300;
/// NXR_NOT_SUPPORTED's Nicira experimenter code (1.2 and later).
const NXR_NOT_SUPPORTED: u16 = 34;

impl OfError {
    /// A Nicira error's codes: (OpenFlow 1.0 BAD_REQUEST code, Nicira
    /// experimenter code from 1.2 on).
    fn nicira_codes(self) -> Option<(u16, u16)> {
        use OfError::*;
        Some(match self {
            ResumeNotSupported => (533, NXR_NOT_SUPPORTED),
            TlvBadCommand => (527, 16),
            TlvBadOptLen => (528, 17),
            TlvBadFieldIdx => (529, 18),
            TlvTableFull => (530, 19),
            TlvAlreadyMapped => (531, 20),
            TlvDupEntry => (532, 21),
            TlvInvalidDel => (537, 38),
            InvalidTlvField => (536, 37),
            _ => return None,
        })
    }
}

impl OfError {
    /// The OFPT_ERROR (type, code) for this error in OpenFlow 1.3.
    fn wire13(self) -> (u16, u16) {
        use OfError::*;
        match self {
            HelloIncompatible => (et13::HELLO_FAILED, 0),
            BadVersion => (et13::BAD_REQUEST, 0),
            BadType => (et13::BAD_REQUEST, 1),
            BadMultipart => (et13::BAD_REQUEST, 2),
            BadExperimenter => (et13::BAD_REQUEST, 3),
            BadExpType => (et13::BAD_REQUEST, 4),
            BadRequestEperm => (et13::BAD_REQUEST, 5),
            BadLen => (et13::BAD_REQUEST, 6),
            BufferUnknown => (et13::BAD_REQUEST, 8),
            BadRequestTableId => (et13::BAD_REQUEST, 9),
            IsSlave => (et13::BAD_REQUEST, 10),
            BadRequestPort => (et13::BAD_REQUEST, 11),
            BadPacket => (et13::BAD_REQUEST, 12),
            BadActionType => (et13::BAD_ACTION, 0),
            BadActionLen => (et13::BAD_ACTION, 1),
            BadActionExperimenter => (et13::BAD_ACTION, 2),
            BadActionExpType => (et13::BAD_ACTION, 3),
            BadOutPort => (et13::BAD_ACTION, 4),
            BadActionArgument => (et13::BAD_ACTION, 5),
            BadQueue => (et13::BAD_ACTION, 8),
            BadOutGroup => (et13::BAD_ACTION, 9),
            MatchInconsistent => (et13::BAD_ACTION, 10),
            BadTag => (et13::BAD_ACTION, 12),
            BadSetType => (et13::BAD_ACTION, 13),
            BadSetLen => (et13::BAD_ACTION, 14),
            BadSetArgument => (et13::BAD_ACTION, 15),
            UnknownInstruction => (et13::BAD_INSTRUCTION, 0),
            UnsupportedInstruction => (et13::BAD_INSTRUCTION, 1),
            BadInstructionTableId => (et13::BAD_INSTRUCTION, 2),
            BadInstructionLen => (et13::BAD_INSTRUCTION, 7),
            BadMatchType => (et13::BAD_MATCH, 0),
            BadMatchLen => (et13::BAD_MATCH, 1),
            BadWildcards => (et13::BAD_MATCH, 5),
            BadField => (et13::BAD_MATCH, 6),
            BadMatchValue => (et13::BAD_MATCH, 7),
            BadMask => (et13::BAD_MATCH, 8),
            BadPrereq => (et13::BAD_MATCH, 9),
            DupField => (et13::BAD_MATCH, 10),
            FlowModUnknown => (et13::FLOW_MOD_FAILED, 0),
            TableFull => (et13::FLOW_MOD_FAILED, 1),
            BadTableId => (et13::FLOW_MOD_FAILED, 2),
            Overlap => (et13::FLOW_MOD_FAILED, 3),
            FlowModEperm => (et13::FLOW_MOD_FAILED, 4),
            BadTimeout => (et13::FLOW_MOD_FAILED, 5),
            BadCommand => (et13::FLOW_MOD_FAILED, 6),
            BadFlags => (et13::FLOW_MOD_FAILED, 7),
            GroupExists => (et13::GROUP_MOD_FAILED, 0),
            InvalidGroup => (et13::GROUP_MOD_FAILED, 1),
            OutOfGroups => (et13::GROUP_MOD_FAILED, 3),
            ChainingUnsupported => (et13::GROUP_MOD_FAILED, 5),
            GroupLoop => (et13::GROUP_MOD_FAILED, 7),
            UnknownGroup => (et13::GROUP_MOD_FAILED, 8),
            BadGroupType => (et13::GROUP_MOD_FAILED, 10),
            BadGroupCommand => (et13::GROUP_MOD_FAILED, 11),
            BadBucket => (et13::GROUP_MOD_FAILED, 12),
            BadWatch => (et13::GROUP_MOD_FAILED, 13),
            PortModBadPort => (et13::PORT_MOD_FAILED, 0),
            PortModBadHwAddr => (et13::PORT_MOD_FAILED, 1),
            PortModBadConfig => (et13::PORT_MOD_FAILED, 2),
            QueueBadPort => (et13::QUEUE_OP_FAILED, 0),
            RoleStale => (et13::ROLE_REQUEST_FAILED, 0),
            BadRole => (et13::ROLE_REQUEST_FAILED, 2),
            MeterModUnknown => (et13::METER_MOD_FAILED, 0),
            MeterExists => (et13::METER_MOD_FAILED, 1),
            InvalidMeter => (et13::METER_MOD_FAILED, 2),
            UnknownMeter => (et13::METER_MOD_FAILED, 3),
            BadMeterCommand => (et13::METER_MOD_FAILED, 4),
            BadMeterFlags => (et13::METER_MOD_FAILED, 5),
            BadMeterRate => (et13::METER_MOD_FAILED, 6),
            BadMeterBurst => (et13::METER_MOD_FAILED, 7),
            BadMeterBand => (et13::METER_MOD_FAILED, 8),
            BadMeterBandValue => (et13::METER_MOD_FAILED, 9),
            OutOfMeters => (et13::METER_MOD_FAILED, 10),
            OutOfBands => (et13::METER_MOD_FAILED, 11),
            BadPropertyType => (et13::BAD_PROPERTY, 0),
            BadPropertyLen => (et13::BAD_PROPERTY, 1),
            BadPropertyValue => (et13::BAD_PROPERTY, 2),
            AsyncConfigInvalid => (et13::ASYNC_CONFIG_FAILED, 0),
            Other { err_type, code } => (err_type, code),
            _ => match self.bundle_index() {
                Some(i) => (et13::BUNDLE_FAILED, i),
                None => (et13::BAD_REQUEST, 5),
            },
        }
    }

    /// The position of a bundle failure in `OFPBFC_*` order.
    fn bundle_index(self) -> Option<u16> {
        BUNDLE_ERRORS
            .iter()
            .position(|e| *e == self)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Where this error lives in `version`: errors that version has no
    /// standard code for are experimenter errors (1.3's bundle errors are
    /// ONF's, resume's are Nicira's).
    pub fn wire_full(self, version: u8) -> WireError {
        use crate::consts::{NX_VENDOR_ID, OFP13_VERSION, ONF_VENDOR_ID};
        if let Some((_, code)) = self.nicira_codes()
            && version != OFP10_VERSION
        {
            return WireError::Experimenter {
                code,
                experimenter: NX_VENDOR_ID,
            };
        }
        if version == OFP13_VERSION
            && let Some(i) = self.bundle_index()
        {
            return WireError::Experimenter {
                code: ONF_BUNDLE_ERROR_BASE + i,
                experimenter: ONF_VENDOR_ID,
            };
        }
        let (t, c) = self.wire(version);
        WireError::Std(t, c)
    }

    /// Names a received experimenter error.
    pub fn from_experimenter(version: u8, code: u16, experimenter: u32) -> Option<OfError> {
        ALL.iter()
            .copied()
            .find(|e| e.wire_full(version) == WireError::Experimenter { code, experimenter })
    }

    /// The OFPT_ERROR (type, code) for this error in OpenFlow 1.0. Errors
    /// 1.0 has no name for map to the closest 1.0 error.
    fn wire10(self) -> (u16, u16) {
        use OfError::*;
        match self {
            HelloIncompatible => (et10::HELLO_FAILED, 0),
            BadVersion => (et10::BAD_REQUEST, 0),
            BadType => (et10::BAD_REQUEST, 1),
            BadMultipart => (et10::BAD_REQUEST, 2),
            BadExperimenter => (et10::BAD_REQUEST, 3),
            BadExpType => (et10::BAD_REQUEST, 4),
            BadRequestEperm | IsSlave => (et10::BAD_REQUEST, 5),
            BadLen => (et10::BAD_REQUEST, 6),
            BufferUnknown => (et10::BAD_REQUEST, 8),
            BadRequestTableId | BadRequestPort | BadPacket => (et10::BAD_REQUEST, 5),
            BadActionType => (et10::BAD_ACTION, 0),
            BadActionLen | BadSetLen => (et10::BAD_ACTION, 1),
            BadActionExperimenter => (et10::BAD_ACTION, 2),
            BadActionExpType => (et10::BAD_ACTION, 3),
            BadOutPort => (et10::BAD_ACTION, 4),
            BadActionArgument | BadOutGroup | BadSetType | BadSetArgument | MatchInconsistent
            | BadTag => (et10::BAD_ACTION, 5),
            BadQueue => (et10::BAD_ACTION, 8),
            UnknownInstruction
            | UnsupportedInstruction
            | BadInstructionTableId
            | BadInstructionLen => (et10::BAD_ACTION, 0),
            BadMatchType | BadMatchLen | BadWildcards | BadField | BadMatchValue | BadMask
            | BadPrereq | DupField => (et10::BAD_REQUEST, 5),
            TableFull => (et10::FLOW_MOD_FAILED, 0),
            Overlap => (et10::FLOW_MOD_FAILED, 1),
            FlowModEperm => (et10::FLOW_MOD_FAILED, 2),
            BadTimeout => (et10::FLOW_MOD_FAILED, 3),
            BadCommand => (et10::FLOW_MOD_FAILED, 4),
            FlowModUnknown | BadTableId | BadFlags => (et10::FLOW_MOD_FAILED, 5),
            GroupExists | InvalidGroup | OutOfGroups | ChainingUnsupported | GroupLoop
            | UnknownGroup | BadGroupType | BadGroupCommand | BadBucket | BadWatch => {
                (et10::BAD_REQUEST, 1)
            }
            PortModBadPort => (et10::PORT_MOD_FAILED, 0),
            PortModBadHwAddr => (et10::PORT_MOD_FAILED, 1),
            PortModBadConfig => (et10::PORT_MOD_FAILED, 1),
            QueueBadPort => (et10::QUEUE_OP_FAILED, 0),
            RoleStale | BadRole => (et10::BAD_REQUEST, 5),
            MeterModUnknown | MeterExists | InvalidMeter | UnknownMeter | BadMeterCommand
            | BadMeterFlags | BadMeterRate | BadMeterBurst | BadMeterBand | BadMeterBandValue
            | OutOfMeters | OutOfBands => (et10::BAD_REQUEST, 1),
            Other { err_type, code } => (err_type, code),
            _ => match self.nicira_codes() {
                Some((code, _)) => (et10::BAD_REQUEST, code),
                None => (et10::BAD_REQUEST, 5),
            },
        }
    }

    /// The OFPT_ERROR (type, code) pair for `version`.
    pub fn wire(self, version: u8) -> (u16, u16) {
        if version == OFP10_VERSION {
            self.wire10()
        } else {
            self.wire13()
        }
    }

    /// Names a received (type, code) pair.
    pub fn from_wire(version: u8, err_type: u16, code: u16) -> OfError {
        if version == OFP10_VERSION {
            // 1.0 codes are not injective from our names; prefer exact 1.0 meaning.
            ALL.iter()
                .copied()
                .find(|e| e.wire10() == (err_type, code))
                .unwrap_or(OfError::Other { err_type, code })
        } else {
            ALL.iter()
                .copied()
                .find(|e| e.wire13() == (err_type, code))
                .unwrap_or(OfError::Other { err_type, code })
        }
    }
}

/// Why a byte string is not a message this crate can hand to the switch.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the OpenFlow header or than its length field says.
    #[error("message truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    /// The header length is below 8 or disagrees with the buffer.
    #[error("bad header length {0}")]
    BadHeaderLength(u16),
    /// A version this crate does not speak.
    #[error("unsupported OpenFlow version 0x{0:02x}")]
    UnsupportedVersion(u8),
    /// The body ends `need` bytes into a field at `offset` with only `have`
    /// left; the switch answers with `error`, which depends on where (a
    /// message body, an action, a match, a bucket…).
    #[error("{error}: {need}-byte field at offset {offset} runs past the end ({have} left)")]
    Short {
        error: OfError,
        offset: usize,
        need: usize,
        have: usize,
    },
    /// A well-framed message whose content is refused; the switch answers
    /// with this error.
    #[error("{0}")]
    Refused(OfError),
}

impl DecodeError {
    /// The OFPT_ERROR a switch sends back for this decode failure.
    pub fn of_error(&self) -> OfError {
        match self {
            DecodeError::Truncated { .. } | DecodeError::BadHeaderLength(_) => OfError::BadLen,
            DecodeError::UnsupportedVersion(_) => OfError::BadVersion,
            DecodeError::Short { error, .. } | DecodeError::Refused(error) => *error,
        }
    }
}

impl From<OfError> for DecodeError {
    fn from(e: OfError) -> DecodeError {
        DecodeError::Refused(e)
    }
}

/// Why a message cannot be expressed in the requested version.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{what} cannot be expressed in OpenFlow {version}")]
    Unsupported { what: String, version: &'static str },
    #[error("message too long ({0} bytes)")]
    TooLong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::OFP13_VERSION;

    #[test]
    fn every_named_error_round_trips_through_its_wire_form_from_1_3_on() {
        use crate::consts::{OFP14_VERSION, OFP15_VERSION};
        use crate::message::ErrorMsg;
        for v in [OFP13_VERSION, OFP14_VERSION, OFP15_VERSION] {
            for e in ALL {
                let msg = ErrorMsg::for_request(*e, v, b"offending");
                assert_eq!(msg.error(v), *e, "{e:?} in version {v}");
                assert!(msg.data.ends_with(b"offending"));
            }
        }
    }

    #[test]
    fn bundle_errors_are_onf_experimenter_errors_in_1_3_and_standard_from_1_4() {
        use crate::consts::{OFP14_VERSION, ONF_VENDOR_ID};
        assert_eq!(
            OfError::BundleMsgFailed.wire_full(OFP13_VERSION),
            WireError::Experimenter {
                code: 2313,
                experimenter: ONF_VENDOR_ID
            }
        );
        assert_eq!(
            OfError::BundleMsgFailed.wire_full(OFP14_VERSION),
            WireError::Std(17, 13)
        );
        assert_eq!(OfError::BadPropertyType.wire(OFP14_VERSION), (14, 0));
    }

    #[test]
    fn is_slave_is_bad_request_code_10_in_1_3() {
        assert_eq!(OfError::IsSlave.wire(OFP13_VERSION), (1, 10));
        assert_eq!(OfError::BadPrereq.wire(OFP13_VERSION), (4, 9));
        assert_eq!(OfError::TableFull.wire(OFP10_VERSION), (3, 0));
    }
}
