//! Wire types shared by every quantpipe node: the messages actors exchange over zenoh, their key
//! expressions, and the encoded-tensor format that carries activations between pipeline stages.
