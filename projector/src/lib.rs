//! Consumes the relayed event log from RabbitMQ and builds the read models (issue: read path).
