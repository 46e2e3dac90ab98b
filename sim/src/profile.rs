//! Device profiles: the capabilities of a ConnectX-5, ConnectX-6 Dx and ConnectX-7 as `QUERY_HCA_CAP` reports them.
