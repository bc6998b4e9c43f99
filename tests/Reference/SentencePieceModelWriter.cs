using Google.Protobuf;
using Sio.Tokenization;

namespace Sio.Tests.Reference;

/// <summary>
/// Writes a scored vocabulary as a SentencePiece BPE <c>tokenizer.model</c> (sentencepiece_model.proto:
/// pieces = 1 {piece = 1, score = 2, type = 3}, trainer_spec = 2 {model_type = 3, vocab_size = 4,
/// byte_fallback = 35, unk/bos/eos/pad ids = 40..43}, normalizer_spec = 3 {name = 1,
/// add_dummy_prefix = 3, remove_extra_whitespaces = 4, escape_whitespaces = 5}).
/// </summary>
public static class SentencePieceModelWriter
{
    public static void Write(SentencePieceBpeTokenizer tok, string path)
    {
        using var file = File.Create(path);
        var o = new CodedOutputStream(file);
        for (int i = 0; i < tok.VocabSize; i++)
        {
            var piece = i switch { 0 => "<unk>", 1 => "<s>", 2 => "</s>", _ => tok.Pieces[i].Replace(' ', '\u2581') };
            int type = i switch { 0 => 2, 1 or 2 => 3, _ => Tokenizer.TryByteToken(tok.Pieces[i], out _) ? 6 : 1 };
            var msg = new MemoryStream();
            var m = new CodedOutputStream(msg);
            m.WriteTag(1, WireFormat.WireType.LengthDelimited); m.WriteString(piece);
            m.WriteTag(2, WireFormat.WireType.Fixed32); m.WriteFloat(tok.Scores![i]);
            m.WriteTag(3, WireFormat.WireType.Varint); m.WriteInt32(type);
            m.Flush();
            o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(msg.ToArray()));
        }
        var trainer = new MemoryStream();
        var t = new CodedOutputStream(trainer);
        t.WriteTag(3, WireFormat.WireType.Varint); t.WriteInt32(2); // BPE
        t.WriteTag(4, WireFormat.WireType.Varint); t.WriteInt32(tok.VocabSize);
        t.WriteTag(35, WireFormat.WireType.Varint); t.WriteBool(true);
        t.WriteTag(40, WireFormat.WireType.Varint); t.WriteInt32(0);
        t.WriteTag(41, WireFormat.WireType.Varint); t.WriteInt32(1);
        t.WriteTag(42, WireFormat.WireType.Varint); t.WriteInt32(2);
        t.WriteTag(43, WireFormat.WireType.Varint); t.WriteInt32(-1);
        t.Flush();
        o.WriteTag(2, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(trainer.ToArray()));
        var norm = new MemoryStream();
        var n = new CodedOutputStream(norm);
        n.WriteTag(1, WireFormat.WireType.LengthDelimited); n.WriteString("identity");
        n.WriteTag(3, WireFormat.WireType.Varint); n.WriteBool(true);
        n.WriteTag(4, WireFormat.WireType.Varint); n.WriteBool(false);
        n.WriteTag(5, WireFormat.WireType.Varint); n.WriteBool(true);
        n.Flush();
        o.WriteTag(3, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(norm.ToArray()));
        o.Flush();
    }
}
